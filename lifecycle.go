package redisws

// A handler's life in a configuration: Provision (defaults, the shared
// broker, the hub), the server's shutdown, and Cleanup, which on a reload
// keeps the connections of an identical handler open.

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gorilla/websocket"
)

// writeBuffers is the write buffer pool of every handler's upgrader: a
// connection holds a buffer only while it writes.
var writeBuffers sync.Pool

// brokers holds one broker per Redis configuration per process, shared by every
// handler instance (and so across config reloads) that names the same Redis.
var brokers = caddy.NewUsagePool()

// pooledBroker is a broker as the pool holds it: the pool calls Destruct
// when the last handler using its Redis configuration is gone.
type pooledBroker struct{ *bus.Broker }

func (p pooledBroker) Destruct() error { return p.Close() }

// liveHandlers counts the provisioned handlers per configuration, so that a
// handler being cleaned up can tell whether the new config still has an
// identical one (then its connections stay open), and holds the hubs whose
// connections stayed so: they belong to the configuration, and end when it
// changes or Caddy exits.
var liveHandlers = struct {
	sync.Mutex
	count map[string]int
	kept  map[string][]*fanout.Hub
	// closing holds the hubs a reload is closing (spread over
	// reload_close_delay), so that an exit meanwhile drains them too.
	closing []*fanout.Hub
}{count: make(map[string]int), kept: make(map[string][]*fanout.Hub)}

// Provision sets defaults and joins the shared Redis broker. It does not wait
// for Redis: Caddy starts and serves while Redis is down.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.setDefaults()
	// Validate before anything is acquired; Caddy calls it again after.
	if err := h.Validate(); err != nil {
		return err
	}
	key, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("encoding configuration: %w", err)
	}
	h.configKey = string(key)
	liveHandlers.Lock()
	liveHandlers.count[h.configKey]++
	liveHandlers.Unlock()

	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	h.metrics = newHandlerMetrics(h.Subscribe)
	h.publish = h.publishChannel()
	if h.History != nil {
		h.history = h.History.options()
	}
	if p := h.Presence; p != nil {
		h.presence = &bus.PresenceOptions{Timeout: time.Duration(p.Timeout), LeaveDelay: time.Duration(*p.LeaveDelay)}
	}
	h.routeScope = strings.Join(append(slices.Clone(h.Subscribe), h.Publish), "\n")
	h.upgrader = websocket.Upgrader{
		CheckOrigin: func(*http.Request) bool { return true }, // checked before, with a clear 403
		// Frames are written by the client's writer, not by gorilla; the
		// pool only serves gorilla's own control frames, so no idle
		// connection pins a write buffer.
		WriteBufferPool: &writeBuffers,
		// Frames from clients are small: a small read buffer of our own
		// instead of the 4 KiB one net/http hands over. Each idle
		// connection holds it; gorilla peeks at most a 14-byte header in
		// it, and longer payloads are read past it. 1024 → 256 saved
		// 0.8 KB of heap per idle WebSocket (bench/idle-results.md).
		ReadBufferSize: 256,
		// Without context takeover, so that one compressed frame of a
		// message serves every client; gorilla offers no other form.
		EnableCompression: h.Compress != nil,
		// The command protocol, then the envelope come first: a client that
		// offers one gets it.
		Subprotocols: append([]string{protocol.CommandSubprotocol, frame.EnvelopeProtocol}, slices.DeleteFunc(slices.Clone(h.Subprotocols), func(p string) bool {
			return p == frame.EnvelopeProtocol || p == protocol.CommandSubprotocol
		})...),
	}

	rc := h.Redis
	if rc == nil {
		rc = new(RedisConfig)
	}
	setup, err := rc.resolve()
	if err != nil {
		return err
	}
	poolKey := setup.key()
	val, _, err := brokers.LoadOrNew(poolKey, func() (caddy.Destructor, error) {
		return pooledBroker{bus.NewBroker(bus.BrokerOptions{Client: setup.client(), Sharded: setup.sharded, Name: setup.describe()})}, nil
	})
	if err != nil {
		return fmt.Errorf("starting redis broker: %w", err)
	}
	h.broker = val.(pooledBroker).Broker
	h.hub = fanout.NewHub(h.broker.Table, func() { _, _ = brokers.Delete(poolKey) }, fanout.HubOptions{
		MaxClients: h.MaxConnections,
		CloseOnGap: h.GapPolicy == gapClose,
		History:    h.history,
		Presence:   h.presence,
		Tracker:    h.broker.Presence,
	})
	for _, ch := range h.Subscribe {
		if !hasPlaceholder(ch) {
			h.hub.SubscribeStatic(ch)
		}
	}
	h.stopDrain = time.Duration(h.StopCloseDelay)
	if app, err := ctx.AppIfConfigured("http"); err == nil {
		if grace := time.Duration(app.(*caddyhttp.App).GracePeriod); grace > 0 {
			h.stopDrain = min(h.stopDrain, grace)
		}
	}
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok {
		srv.RegisterOnShutdown(h.serverShutdown)
	}
	return nil
}

// setDefaults fills the settings left at zero.
func (h *Handler) setDefaults() {
	if h.MaxMessageSize == 0 {
		h.MaxMessageSize = defaultMaxMessageSize
	}
	if h.MaxChannels == 0 {
		h.MaxChannels = defaultMaxChannels
	}
	if h.SendQueue == 0 {
		h.SendQueue = defaultSendQueue
	}
	if h.PingInterval == 0 {
		h.PingInterval = caddy.Duration(defaultPingInterval)
	}
	if h.ReloadCloseDelay == nil {
		d := caddy.Duration(defaultReloadCloseDelay)
		h.ReloadCloseDelay = &d
	}
	if h.SubscribeRate == 0 {
		h.SubscribeRate = defaultSubscribeRate
		if h.SubscribeRateBurst == 0 {
			h.SubscribeRateBurst = defaultSubscribeRateBurst
		}
	}
	if h.SubscribeRateBurst == 0 {
		h.SubscribeRateBurst = int(math.Ceil(h.SubscribeRate))
	}
	if h.RateLimit > 0 && h.RateLimitBurst == 0 {
		h.RateLimitBurst = int(math.Ceil(h.RateLimit))
	}
	if h.Presence != nil {
		h.Presence.setDefaults()
	}
	if h.Compress != nil {
		h.Compress.setDefaults()
	}
}

// Cleanup runs when the config that provisioned h is unloaded. Connections
// stay open when the new config has an identical handler, and then end as
// that handler's own do; otherwise they are closed (1012, spread over
// ReloadCloseDelay), or with 1001 when Caddy exits (spread over
// StopCloseDelay). The hub keeps the broker until its last connection is gone.
func (h *Handler) Cleanup() error {
	if h.hub == nil {
		return nil
	}
	exiting := caddy.Exiting()
	liveHandlers.Lock()
	liveHandlers.count[h.configKey]--
	stillLive := liveHandlers.count[h.configKey] > 0 && !exiting
	hubs := []*fanout.Hub{h.hub}
	if stillLive {
		kept := slices.DeleteFunc(liveHandlers.kept[h.configKey], (*fanout.Hub).Finished)
		liveHandlers.kept[h.configKey] = append(kept, h.hub)
	} else {
		hubs = append(hubs, liveHandlers.kept[h.configKey]...)
		delete(liveHandlers.kept, h.configKey)
		liveHandlers.closing = slices.DeleteFunc(liveHandlers.closing, (*fanout.Hub).Finished)
		if exiting {
			hubs = append(hubs, liveHandlers.closing...)
			liveHandlers.closing = nil
		} else {
			liveHandlers.closing = append(liveHandlers.closing, hubs...)
		}
		if liveHandlers.count[h.configKey] <= 0 {
			delete(liveHandlers.count, h.configKey)
		}
	}
	liveHandlers.Unlock()
	if exiting {
		h.drain(hubs)
		return nil
	}
	for _, hb := range hubs {
		if stillLive {
			hb.Retire(0, "", -1)
		} else {
			hb.Retire(fanout.CloseServiceReload, "config reloaded", time.Duration(*h.ReloadCloseDelay))
		}
	}
	return nil
}

// Interface guards
