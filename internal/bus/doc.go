// Package bus is the Redis side of redis_ws, one Broker per Redis
// configuration and process: the subscriber connections and their channel
// table, cluster routing, the outbox that publishes client frames, the
// history (Lua scripts under lua/, embedded), the node's gap fill, and the
// presence tracker. keys.go names every Redis key and channel of the module.
//
// It calls up only through Receiver (a hub of package fanout): Deliver and
// Gap, presence events coming as messages of their events channel. It knows
// no Caddy type: options carry time.Duration, and the adapter injects the
// logger (SetLogger) and registers the collectors (Collectors).
package bus
