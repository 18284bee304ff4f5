package bus

import "github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"

// Receiver is what the broker hands a channel's messages to (a hub): the
// broker calls it and never knows what is behind it, as centrifuge's
// BrokerEventHandler. Presence events come as messages of their events
// channel.
type Receiver interface {
	// Deliver takes one message of a channel the receiver joined; only the
	// channel's fan-out worker calls it, in the channel's order.
	Deliver(m *frame.Message)
	// Gap says that messages of ch may have been missed and cannot be
	// given.
	Gap(ch string)
}
