package redisws

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/caddyserver/caddy/v2"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// serveWebSocket checks the upgrade, admits it (its channels subscribed
// before the upgrade, so that a connected client misses nothing published
// after it is told so; messages wait in its queue) and upgrades it; the
// connection is then served by its own reader goroutine (serve).
func (h *Handler) serveWebSocket(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer) error {
	if status, reason := handshakeRefusal(r); status != 0 {
		return h.refuseHandshake(w, status, reason)
	}
	if !h.subprotocolAccepted(r) {
		return refuse(w, http.StatusBadRequest, "no supported subprotocol offered; this endpoint speaks "+strings.Join(h.Subprotocols, ", "))
	}
	kind := frame.RawFrames
	offered := websocket.Subprotocols(r)
	commands := slices.Contains(offered, protocol.CommandSubprotocol)
	if commands || slices.Contains(offered, frame.EnvelopeProtocol) {
		kind = frame.EnvelopeFrames
	}
	c, err := h.admit(w, r, repl, admission{kind: kind, publishes: true, resume: func(channels []string) (*resumeRequest, error) {
		return h.parseResume(r.URL.Query(), channels)
	}})
	if c == nil {
		return err
	}

	hj := &hijacker{ResponseWriter: w, sendBuffer: h.SendBuffer}
	if h.Compress != nil {
		r = withDeflateOffer(r)
	}
	conn, err := h.upgrader.Upgrade(hj, r, nil)
	if err != nil {
		h.hub.Remove(c)
		// An I/O error, or bytes sent before the answer: gorilla has
		// answered the client or closed the connection.
		h.logger.Debug("upgrade failed", zap.Error(err))
		return nil
	}
	link := newWSLink(conn, hj.conn, h.Compress)
	handle := h.publishFrames(c)
	if commands {
		handle = h.newCommands(c, h.access(repl, slices.Clone(c.Channels), c.Publish), requestTokens(r, repl)).handle
	}
	h.read(c, link, r.RemoteAddr, handle)
	return nil
}

// read serves the connection's reads until it ends, and then its end
// (closed) runs: on Linux over plain TCP without a goroutine parked while
// the client is silent (the poller), elsewhere in a goroutine of its own.
// ServeHTTP returns either way: the connection needs none of the request's
// state but what handle keeps, and a fresh goroutine's stack is far smaller
// than the handler chain's. The writer starts after the poller took the
// connection, whose End tells it apart.
func (h *Handler) read(c *fanout.Client, l *wsLink, remote string, handle frameHandler) {
	rd := h.newWSReader(c, l, handle)
	closed := h.opened(c, remote, false)
	pongWait := 2 * time.Duration(h.PingInterval)
	polled := pollReads(rd, pongWait, closed)
	c.Start(l, time.Duration(h.PingInterval))
	if polled {
		return
	}
	go func() {
		rd.loop(pongWait)
		closed()
	}()
}

// publishFrames is the frame handler of raw and redis_ws.v1 clients: every
// frame is published, as it is, to the client's publish channel.
func (h *Handler) publishFrames(c *fanout.Client) frameHandler {
	// A frame to a channel that may not get a history now closes the
	// client, which may try again later; made once, for every frame.
	tooManyNew := func(error) { c.Close(protocol.CloseTryAgainLater, "too many new channels; try again later") }
	return func(typ int, data []byte) bool {
		if c.Publish == "" {
			return true // receive-only: frames are discarded
		}
		if !h.broker.Publish(c.Publish, data, typ == websocket.BinaryMessage, h.history, tooManyNew) {
			h.logger.Debug("client frame dropped: publish outbox full", zap.Int("bytes", len(data)))
		}
		return true
	}
}

// subprotocolAccepted tells whether the client offers one of Subprotocols,
// or does not need to.
func (h *Handler) subprotocolAccepted(r *http.Request) bool {
	if len(h.Subprotocols) == 0 || h.SubprotocolOptional {
		return true
	}
	for _, p := range websocket.Subprotocols(r) {
		if p == frame.EnvelopeProtocol || p == protocol.CommandSubprotocol || slices.Contains(h.Subprotocols, p) {
			return true
		}
	}
	return false
}

// hijacker gives gorilla the http.Hijacker it asserts: gorilla v1.5.3
// type-asserts the response writer, but Caddy ≥ 2.11.5 wraps it in types
// that implement Hijack only through Unwrap. It hijacks the writer net/http
// gave, beneath every wrapper, and hands gorilla the connection wrapped in a
// corkConn.
type hijacker struct {
	http.ResponseWriter
	sendBuffer int // SO_SNDBUF to set; 0: leave it to the kernel
	conn       *corkConn
}

func (w *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(innermost(w.ResponseWriter)).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if tcp, ok := conn.(*net.TCPConn); ok && w.sendBuffer > 0 {
		_ = tcp.SetWriteBuffer(w.sendBuffer)
	}
	w.conn = &corkConn{Conn: conn}
	return w.conn, brw, nil
}

// innermost unwraps the handlers' wrappers down to net/http's writer. With
// access logging on, Caddy's response recorder hijacks through a connection
// that adds every byte read and written to the log line's counters; ServeHTTP
// returns right after the upgrade and the log line reads them then, while
// this connection lives on in its reader and writer goroutines: a data race,
// and a net.TCPConn that SetWriteBuffer no longer reaches. The log line keeps
// the request; its size leaves out the connection's bytes.
func innermost(w http.ResponseWriter) http.ResponseWriter {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}

// wsLink writes a client's frames to its WebSocket: whole frames appended
// under the cork, so a batch is one write system call.
type wsLink struct {
	conn *websocket.Conn
	out  *corkConn
	// polled: its reads are the poller's; nil: a goroutine's.
	polled *polledConn
	// deflateFrom is the smallest payload sent compressed: the route's
	// compress min_size when the client agreed to permessage-deflate;
	// 0: every frame plain.
	deflateFrom int
}

// newWSLink is the link of an upgraded connection: compressed from the
// route's min_size when the handshake agreed to permessage-deflate, which
// gorilla does only on a route with compress.
func newWSLink(conn *websocket.Conn, out *corkConn, compress *Compression) *wsLink {
	l := &wsLink{conn: conn, out: out}
	if out.deflate {
		l.deflateFrom = compress.MinSize
	}
	return l
}

// errSilent ends a polled connection whose client answered no ping for
// twice ping_interval: the goroutine reader's read deadline.
var errSilent = errors.New("client silent: no pong for twice the ping interval")

func (l *wsLink) Send(batch []*frame.Frame, ping bool) error {
	if ping && l.polled != nil && l.polled.silent() {
		return errSilent
	}
	l.out.cork()
	l.out.appendFrames(batch, l.deflateFrom)
	var err error
	if ping {
		err = l.conn.WriteControl(websocket.PingMessage, nil, time.Time{})
	}
	if uerr := l.out.uncork(fanout.WriteWait); err == nil {
		err = uerr
	}
	return err
}

// End sends the close frame, if any, and closes the connection.
func (l *wsLink) End(code int, reason string) {
	if code != 0 {
		l.out.cork()
		_ = l.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Time{})
		_ = l.out.uncork(fanout.CloseWait)
	}
	if l.polled != nil {
		l.polled.end()
		return
	}
	_ = l.conn.Close()
}

func (l *wsLink) Cut(grace time.Duration) { l.out.cut(grace) }
