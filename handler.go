package redisws

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/time/rate"
)

// retryAfter is the Retry-After, in seconds, of a 503 for max_connections.
const retryAfter = "10"

// ServeHTTP checks the request, subscribes its channels and upgrades it; the
// connection is then served by its own reader goroutine (serve).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if !websocket.IsWebSocketUpgrade(r) {
		return refuse(w, http.StatusBadRequest, "this is a WebSocket endpoint; connect with a WebSocket client")
	}
	if !h.originAllowed(r) {
		return refuse(w, http.StatusForbidden, "origin not allowed")
	}
	if !h.subprotocolAccepted(r) {
		return refuse(w, http.StatusBadRequest, "no supported subprotocol offered; this endpoint speaks "+strings.Join(h.Subprotocols, ", "))
	}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	channels, publish, err := h.resolve(repl)
	if err != nil {
		return refuse(w, http.StatusBadRequest, err.Error())
	}
	resume, err := h.parseResume(r.URL.Query(), channels)
	if err != nil {
		return refuse(w, http.StatusBadRequest, err.Error())
	}
	// Subscribe before the upgrade, so that a connected client misses
	// nothing published after it is told so; messages wait in its queue.
	envelope := slices.Contains(websocket.Subprotocols(r), envelopeProtocol)
	c := newClient(channels, publish, envelope, h.SendQueue, h.metrics)
	if !h.hub.add(c) {
		w.Header().Set("Retry-After", retryAfter)
		return refuse(w, http.StatusServiceUnavailable, "too many connections; try again later")
	}
	h.broker.waitReady(r.Context(), channels)
	if envelope || resume != nil {
		if err := h.catchUp(r.Context(), c, resume); err != nil {
			h.hub.remove(c)
			h.logger.Debug("resume refused", zap.Error(err))
			w.Header().Set("Retry-After", retryAfter)
			return refuse(w, http.StatusServiceUnavailable, "the history cannot be read now; try again later")
		}
	}

	hj := &hijacker{ResponseWriter: w, sendBuffer: h.SendBuffer}
	conn, err := h.upgrader.Upgrade(hj, r, nil)
	if err != nil {
		h.hub.remove(c)
		h.logger.Debug("upgrade failed", zap.Error(err)) // gorilla has answered the client
		return nil
	}
	c.start(conn, hj.conn, time.Duration(h.PingInterval))
	// ServeHTTP returns now: the connection needs none of the request's
	// state, and a fresh goroutine's stack is far smaller than the handler
	// chain's, which matters for idle connections.
	go h.serve(c, r.RemoteAddr)
	return nil
}

// serve is the connection's reader; the connection ends with it.
func (h *Handler) serve(c *client, remote string) {
	start := time.Now()
	h.metrics.connections.Inc()
	h.readLoop(c)
	c.close(0, "")
	h.hub.remove(c)
	h.metrics.connections.Dec()
	if ce := h.logger.Check(zapcore.DebugLevel, "connection closed"); ce != nil {
		ce.Write(zap.String("remote", remote), zap.Strings("channels", c.channels),
			zap.Duration("duration", time.Since(start)), zap.Int("close_code", c.closeCode()))
	}
}

// readLoop publishes every frame of the client until the connection ends.
// gorilla answers a frame over the read limit with close 1009 itself.
func (h *Handler) readLoop(c *client) {
	conn := c.conn
	pongWait := 2 * time.Duration(h.PingInterval)
	conn.SetReadLimit(h.MaxMessageSize)
	_ = conn.SetReadDeadline(time.Now().Add(pongWait))
	conn.SetPongHandler(func(string) error {
		return conn.SetReadDeadline(time.Now().Add(pongWait))
	})
	var limiter *rate.Limiter
	if h.RateLimit > 0 {
		limiter = rate.NewLimiter(rate.Limit(h.RateLimit), h.RateLimitBurst)
	}
	for {
		typ, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if typ == websocket.TextMessage && !utf8.Valid(data) {
			c.close(websocket.CloseInvalidFramePayloadData, "invalid UTF-8") // RFC 6455 §8.1
			return
		}
		if limiter != nil && !limiter.Allow() {
			c.close(websocket.ClosePolicyViolation, "rate limit exceeded")
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(pongWait))
		h.metrics.framesReceived.Inc()
		if c.publish == "" {
			continue // receive-only: frames are discarded
		}
		if !h.broker.publish(c.publish, data, h.History) {
			h.logger.Debug("client frame dropped: publish outbox full", zap.Int("bytes", len(data)))
		}
	}
}

// subprotocolAccepted tells whether the client offers one of Subprotocols,
// or does not need to.
func (h *Handler) subprotocolAccepted(r *http.Request) bool {
	if len(h.Subprotocols) == 0 || h.SubprotocolOptional {
		return true
	}
	for _, p := range websocket.Subprotocols(r) {
		if p == envelopeProtocol || slices.Contains(h.Subprotocols, p) {
			return true
		}
	}
	return false
}

// originAllowed applies Origins; without them, only the request's own host
// may connect from a browser.
func (h *Handler) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if len(h.Origins) == 0 {
		u, err := url.Parse(origin)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
	for _, o := range h.Origins {
		if o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}

// refuse answers a request that will not be upgraded, with a plain body
// that says why.
func refuse(w http.ResponseWriter, status int, reason string) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, err := fmt.Fprintf(w, "redis_ws: %s\n", reason)
	return err
}

// hijacker gives gorilla the http.Hijacker it asserts: gorilla v1.5.3
// type-asserts the response writer, but Caddy ≥ 2.11.5 wraps it in types
// that implement Hijack only through Unwrap (unless access logging is on),
// which http.ResponseController follows. It hands gorilla the connection
// wrapped in a corkConn.
type hijacker struct {
	http.ResponseWriter
	sendBuffer int // SO_SNDBUF to set; 0: leave it to the kernel
	conn       *corkConn
}

func (w *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if tcp, ok := conn.(*net.TCPConn); ok && w.sendBuffer > 0 {
		_ = tcp.SetWriteBuffer(w.sendBuffer)
	}
	w.conn = &corkConn{Conn: conn}
	return w.conn, brw, nil
}
