// Package redisws is a Caddy HTTP handler, redis_ws, that turns several
// Caddy nodes into one WebSocket space through Redis Pub/Sub: every frame a
// client sends is PUBLISHed to Redis, and every node delivers every message of
// its channels to its own clients.
package redisws

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
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Handler{})
	httpcaddyfile.RegisterHandlerDirective("redis_ws", parseCaddyfile)
	// After the auth directives, so {http.auth.user.id} can name a channel.
	httpcaddyfile.RegisterDirectiveOrder("redis_ws", httpcaddyfile.Before, "respond")
}

// Defaults of the optional settings.
const (
	defaultRedisURL       = "redis://127.0.0.1:6379"
	defaultMaxMessageSize = 64 << 10
	defaultSendQueue      = 1 << 20
	defaultMaxChannels    = 128
	// A browser app that opens a page of rooms at once stays far below.
	defaultSubscribeRate      = 50
	defaultSubscribeRateBurst = 128
	defaultPingInterval       = 30 * time.Second
	defaultReloadCloseDelay   = 10 * time.Second
	// exitWait bounds how long Caddy's exit waits for close frames to go out.
	exitWait = 2 * time.Second
)

// Handler serves WebSocket clients whose frames are published to Redis and
// who receive every message of their Redis channels, on every node.
type Handler struct {
	// Channels delivered to the clients. Placeholders are expanded per
	// request (room:{http.request.uri.path.1}); a name that comes out empty,
	// longer than 256 bytes, with control characters or starting with
	// redis_ws: (the module's own keys and channels) is refused with 400.
	// At least one is required.
	Subscribe []string `json:"subscribe,omitempty"`

	// Channel that client frames are published to, with placeholders; "off"
	// makes clients receive-only (their frames are discarded). Default: the
	// subscribed channel when there is exactly one; required otherwise.
	Publish string `json:"publish,omitempty"`

	// Channels clients may subscribe to and publish to at run time, beyond
	// the route's own: see Allow. Default: none.
	Allow *Allow `json:"allow,omitempty"`

	// Redis to use. Default: redis://127.0.0.1:6379.
	Redis *RedisConfig `json:"redis,omitempty"`

	// Origins allowed besides the site's own, with credentials, as
	// scheme://host[:port]; "*" lets every other origin in without
	// credentials (a request of one that carries a Cookie or Authorization
	// is refused, and so is null). Requests without an Origin header
	// (non-browser clients) are always allowed. Default: the site's own
	// origin only (scheme, host and port).
	Origins []string `json:"origins,omitempty"`

	// Largest client message in bytes; a larger one closes the connection
	// with 1009. Default: 65536.
	MaxMessageSize int64 `json:"max_message_size,omitempty"`

	// Bytes of messages queued for one client; a client that lets more pile
	// up (it reads too slowly) is closed with 1008, alone. A single message
	// larger than this is still delivered. Default: 1 MiB.
	SendQueue int `json:"send_queue,omitempty"`

	// Interval of the server's pings; a client silent for two intervals is
	// dropped. Default: 30s.
	PingInterval caddy.Duration `json:"ping_interval,omitempty"`

	// When a reload changes or removes this handler, its connections are
	// closed with 1012, spread evenly over this delay so that clients do not
	// reconnect all at once. 0 closes them at once; a negative value keeps
	// them open until they leave. Connections of a handler that a reload
	// leaves unchanged always stay open. Default: 10s.
	ReloadCloseDelay *caddy.Duration `json:"reload_close_delay,omitempty"`

	// Channels one connection may follow at once: its route's own and those
	// it names (a command client's subscribes, an event stream's channel=
	// query). Default: 128.
	MaxChannels int `json:"max_channels,omitempty"`

	// Connections this handler accepts at once; beyond it an upgrade gets
	// 503 with Retry-After, and connected clients are not affected.
	// Default: 0, no limit.
	MaxConnections int `json:"max_connections,omitempty"`

	// Messages per second one client may send; a client that sends faster
	// than this, beyond RateLimitBurst, is closed with 1008. Default: 0, no
	// limit.
	RateLimit float64 `json:"rate_limit,omitempty"`

	// Messages a client may send at once above RateLimit. Default: RateLimit
	// rounded up (one second's worth).
	RateLimitBurst int `json:"rate_limit_burst,omitempty"`

	// Subscribe commands per second one command client may send, and the
	// burst above it; beyond them a subscribe is refused (rate_limited).
	// Default: 50 per second, burst 128.
	SubscribeRate      float64 `json:"subscribe_rate,omitempty"`
	SubscribeRateBurst int     `json:"subscribe_rate_burst,omitempty"`

	// WebSocket subprotocols the server speaks, in order of preference; the
	// first one the client offers is chosen. A client that offers none of
	// them gets 400, unless SubprotocolOptional is set.
	Subprotocols []string `json:"subprotocols,omitempty"`

	// Accept clients that offer none of Subprotocols, without a subprotocol.
	SubprotocolOptional bool `json:"subprotocol_optional,omitempty"`

	// Kernel send buffer of each connection's socket, in bytes (SO_SNDBUF;
	// Linux doubles it). A client that stops reading pins up to this much
	// kernel memory, besides its send_queue, and is found out sooner.
	// Default: 0, the kernel's autotuning (up to megabytes per socket).
	SendBuffer int `json:"send_buffer,omitempty"`

	// What happens to clients when the Redis subscription comes back after
	// an outage, so messages published meanwhile were missed: "keep" them
	// (at most once delivery), or "close" them with 4001 so that they
	// reconnect and reload their state. Default: keep.
	GapPolicy string `json:"gap_policy,omitempty"`

	// Keep the last messages of each channel in Redis: client frames are
	// recorded with an offset, clients can resume (since) or replay
	// (rewind), and the node fills its own gaps from the history; then
	// gap_policy applies only to what the history cannot give. Default: off.
	History *History `json:"history,omitempty"`

	// Make every connection present in its channels, on every node: a GET
	// with Accept: application/json answers who is there, redis_ws.v1
	// clients get join and leave events. Default: off.
	Presence *Presence `json:"presence,omitempty"`

	// Send messages compressed (permessage-deflate) to the clients that
	// offer it, each compressed once per node. Default: off.
	Compress *Compression `json:"compress,omitempty"`

	publish string // publishChannel(); "" = receive-only
	// routeScope names the route for Idempotency-Keys: its channel
	// templates, the same on every node with this configuration.
	routeScope string
	configKey  string // the configuration's JSON with its defaults
	broker     *bus.Broker
	hub        *fanout.Hub
	history    *bus.HistoryOptions  // History applied; nil: none
	presence   *bus.PresenceOptions // Presence applied; nil: none
	upgrader   websocket.Upgrader
	logger     *zap.Logger
	metrics    *handlerMetrics
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.redis_ws",
		New: func() caddy.Module { return new(Handler) },
	}
}

var writeBuffers sync.Pool

// liveHandlers counts the provisioned handlers per configuration, so that a
// handler being cleaned up can tell whether the new config still has an
// identical one (then its connections stay open), and holds the hubs whose
// connections stayed so: they belong to the configuration, and end when it
// changes or Caddy exits.
// brokers holds one broker per Redis configuration per process, shared by every
// handler instance (and so across config reloads) that names the same Redis.
var brokers = caddy.NewUsagePool()

// pooledBroker is a broker as the pool holds it: the pool calls Destruct
// when the last handler using its Redis configuration is gone.
type pooledBroker struct{ *bus.Broker }

func (p pooledBroker) Destruct() error { return p.Close() }

var liveHandlers = struct {
	sync.Mutex
	count map[string]int
	kept  map[string][]*fanout.Hub
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
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok {
		srv.RegisterOnShutdown(h.serverShutdown)
	}
	return nil
}

// serverShutdown runs when Caddy shuts the server down (a reload or exit).
// At exit Caddy waits for every response to finish before it cleans up the
// modules, and event streams only finish when they are ended: end them now.
// On a reload Cleanup decides, as for WebSockets.
func (h *Handler) serverShutdown() {
	if !caddy.Exiting() {
		return
	}
	liveHandlers.Lock()
	hubs := append([]*fanout.Hub{h.hub}, liveHandlers.kept[h.configKey]...)
	liveHandlers.Unlock()
	for _, hb := range hubs {
		hb.Retire(fanout.CloseGoingAway, "server exiting", 0)
	}
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
// ReloadCloseDelay), or at once with 1001 when Caddy exits. The hub keeps the broker until its last connection is gone.
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
		if liveHandlers.count[h.configKey] <= 0 {
			delete(liveHandlers.count, h.configKey)
		}
	}
	liveHandlers.Unlock()
	for _, hb := range hubs {
		switch {
		case exiting:
			hb.Retire(fanout.CloseGoingAway, "server exiting", 0)
		case stillLive:
			hb.Retire(0, "", -1)
		default:
			hb.Retire(fanout.CloseServiceReload, "config reloaded", time.Duration(*h.ReloadCloseDelay))
		}
	}
	if exiting {
		for _, hb := range hubs {
			hb.WaitEmpty(exitWait)
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
