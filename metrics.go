package redisws

import (
	"errors"
	"fmt"
	"strings"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/prometheus/client_golang/prometheus"
)

// The collectors are package-level so that their values survive reloads:
// each config gets a fresh registry from Caddy, and Provision registers the
// same collectors into it. Labels are bounded by the config: the "handler"
// label is the handler's configured subscribe list, never a request value.
var metrics = struct {
	connections    *prometheus.GaugeVec
	streams        *prometheus.GaugeVec
	httpPublishes  *prometheus.CounterVec
	framesReceived *prometheus.CounterVec
	deliveries     *prometheus.CounterVec
	deliveryDrops  *prometheus.CounterVec
	slowClients    *prometheus.CounterVec
	fanoutLatency  prometheus.Histogram
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
}

// registerMetrics adds the collectors to a config's registry; the same
// collector registered twice (two handlers in one config) is fine.
func registerMetrics(reg prometheus.Registerer) error {
	for _, c := range append([]prometheus.Collector{
		metrics.connections, metrics.streams, metrics.httpPublishes, metrics.framesReceived, metrics.deliveries, metrics.deliveryDrops, metrics.slowClients, metrics.fanoutLatency, frame.CompressedMessages,
	}, bus.Collectors()...) {
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
	client         fanout.ClientMetrics
}

func newHandlerMetrics(subscribe []string) *handlerMetrics {
	label := strings.Join(subscribe, ",")
	return &handlerMetrics{
		connections:    metrics.connections.WithLabelValues(label),
		streams:        metrics.streams.WithLabelValues(label),
		httpPublishes:  metrics.httpPublishes.MustCurryWith(prometheus.Labels{"handler": label}),
		framesReceived: metrics.framesReceived.WithLabelValues(label),
		client: fanout.ClientMetrics{
			Deliveries:    metrics.deliveries.WithLabelValues(label),
			DeliveryDrops: metrics.deliveryDrops.WithLabelValues(label),
			SlowClients:   metrics.slowClients.WithLabelValues(label),
			FanoutLatency: metrics.fanoutLatency,
		},
	}
}
