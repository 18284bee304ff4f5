package redisws

import (
	"errors"
	"fmt"
	"strings"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/prometheus/client_golang/prometheus"
)

// The collectors are package-level so that their values survive reloads:
// each config gets a fresh registry from Caddy, and Provision registers the
// same collectors into it. Labels are bounded by the config: the "handler"
// label is the handler's configured subscribe list, never a request value.
var metrics = struct {
	connections      *prometheus.GaugeVec
	streams          *prometheus.GaugeVec
	httpPublishes    *prometheus.CounterVec
	framesReceived   *prometheus.CounterVec
	deliveries       *prometheus.CounterVec
	deliveryDrops    *prometheus.CounterVec
	slowClients      *prometheus.CounterVec
	fanoutLatency    prometheus.Histogram
	messages         prometheus.Counter
	published        prometheus.Counter
	publishDrops     *prometheus.CounterVec
	publishErrors    prometheus.Counter
	redisReconnects  prometheus.Counter
	gaps             prometheus.Counter
	gapsFilled       prometheus.Counter
	gapsUnfillable   prometheus.Counter
	channels         prometheus.Gauge
	presenceChannels prometheus.Gauge
	presenceUsers    prometheus.Gauge
	presenceEvents   *prometheus.CounterVec
	presenceErrors   prometheus.Counter
}{
	connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "connections",
		Help: "Open connections: WebSockets and event streams.",
	}, []string{"handler"}),
	streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "event_streams",
		Help: "Open Server-Sent Events streams (counted in connections too).",
	}, []string{"handler"}),
	httpPublishes: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "http_publishes_total",
		Help: "POST requests that publish, by the status they were answered with.",
	}, []string{"handler", "code"}),
	framesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "frames_received_total",
		Help: "Frames received from clients.",
	}, []string{"handler"}),
	deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "deliveries_total",
		Help: "Messages written to clients.",
	}, []string{"handler"}),
	deliveryDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "deliveries_dropped_total",
		Help: "Messages not delivered because their client was closed as too slow.",
	}, []string{"handler"}),
	slowClients: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "slow_clients_closed_total",
		Help: "Clients closed because their send queue overflowed.",
	}, []string{"handler"}),
	fanoutLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "fanout_latency_seconds",
		Help:    "Time from receiving a message from Redis to writing it to a client, observed once per write batch for its oldest message.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10), // 100µs .. 26s
	}),
	messages: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "redis_messages_received_total",
		Help: "Messages received from Redis by the subscriber.",
	}),
	published: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "redis_ws", Name: "messages_published_total",
		Help: "Client frames published to Redis.",
	}),
	publishDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
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
	channels: prometheus.NewGauge(prometheus.GaugeOpts{
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

// registerMetrics adds the collectors to a config's registry; the same
// collector registered twice (two handlers in one config) is fine.
func registerMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		metrics.connections, metrics.streams, metrics.httpPublishes, metrics.framesReceived, metrics.deliveries, metrics.deliveryDrops,
		metrics.slowClients, metrics.fanoutLatency, metrics.messages, metrics.published,
		metrics.publishDrops, metrics.publishErrors, metrics.redisReconnects, metrics.gaps, metrics.gapsFilled, metrics.gapsUnfillable, metrics.channels,
		metrics.presenceChannels, metrics.presenceUsers, metrics.presenceEvents, metrics.presenceErrors,
		frame.CompressedMessages,
	} {
		var already prometheus.AlreadyRegisteredError
		if err := reg.Register(c); err != nil && !errors.As(err, &already) {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	return nil
}

// handlerMetrics are one handler's labelled children, resolved once.
type handlerMetrics struct {
	connections    prometheus.Gauge
	streams        prometheus.Gauge
	httpPublishes  *prometheus.CounterVec // by code: curried with the handler
	framesReceived prometheus.Counter
	deliveries     prometheus.Counter
	deliveryDrops  prometheus.Counter
	slowClients    prometheus.Counter
	fanoutLatency  prometheus.Observer // shared by every handler: no label
}

func newHandlerMetrics(subscribe []string) *handlerMetrics {
	label := strings.Join(subscribe, ",")
	return &handlerMetrics{
		connections:    metrics.connections.WithLabelValues(label),
		streams:        metrics.streams.WithLabelValues(label),
		httpPublishes:  metrics.httpPublishes.MustCurryWith(prometheus.Labels{"handler": label}),
		framesReceived: metrics.framesReceived.WithLabelValues(label),
		deliveries:     metrics.deliveries.WithLabelValues(label),
		deliveryDrops:  metrics.deliveryDrops.WithLabelValues(label),
		slowClients:    metrics.slowClients.WithLabelValues(label),
		fanoutLatency:  metrics.fanoutLatency,
	}
}
