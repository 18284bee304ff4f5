package bus

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the collectors of the Redis side, one set per process
// (the adapter registers them into each config's registry: Collectors).
var Metrics = struct {
	messages         prometheus.Counter
	published        prometheus.Counter
	PublishDrops     *prometheus.CounterVec
	publishErrors    prometheus.Counter
	redisReconnects  prometheus.Counter
	gaps             prometheus.Counter
	gapsFilled       prometheus.Counter
	gapsUnfillable   prometheus.Counter
	Channels         prometheus.Gauge
	presenceChannels prometheus.Gauge
	presenceUsers    prometheus.Gauge
	presenceEvents   *prometheus.CounterVec
	presenceErrors   prometheus.Counter
}{
	messages: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "redis_messages_received_total",
		Help: "Messages received from Redis by the subscriber.",
	}),
	published: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "messages_published_total",
		Help: "Client frames published to Redis.",
	}),
	PublishDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "publish_dropped_total",
		Help: "Client frames not published: outbox full, expired while Redis was down, or refused by Redis.",
	}, []string{"reason"}),
	publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "publish_errors_total",
		Help: "Failed attempts to publish a batch of client frames (retried).",
	}),
	redisReconnects: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "redis_reconnects_total",
		Help: "Subscriber connections lost whose channels were subscribed again, on the same server or on the one that took over.",
	}),
	gaps: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "gaps_total",
		Help: "Times the channels of a lost subscriber connection were subscribed again, so messages published meanwhile may have been missed.",
	}),
	gapsFilled: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "gaps_filled_total",
		Help: "Gaps of channels with history that the node filled from the history: every missed message delivered.",
	}),
	gapsUnfillable: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "gaps_unfillable_total",
		Help: "Gaps of channels with history that the history could not fill (epoch changed, entries trimmed or expired, Redis unreadable); gap_policy applied.",
	}),
	Channels: prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "channels",
		Help: "Redis channels the subscriber is subscribed to.",
	}),
	presenceChannels: prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "presence_channels",
		Help: "Channels in which this node has presence entries in Redis.",
	}),
	presenceUsers: prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "presence_users",
		Help: "Users this node holds present in Redis, counted once per channel.",
	}),
	presenceEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "presence_events_total",
		Help: "Join and leave events received from Redis, by type.",
	}, []string{"type"}),
	presenceErrors: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "presence_update_errors_total",
		Help: "Presence updates of one channel that Redis did not take (retried).",
	}),
}

// Collectors are Metrics, for a registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		Metrics.messages, Metrics.published, Metrics.PublishDrops, Metrics.publishErrors, Metrics.redisReconnects, Metrics.gaps, Metrics.gapsFilled, Metrics.gapsUnfillable, Metrics.Channels, Metrics.presenceChannels, Metrics.presenceUsers, Metrics.presenceEvents, Metrics.presenceErrors,
	}
}
