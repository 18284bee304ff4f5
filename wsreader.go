package redisws

import (
	"errors"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// frameHandler takes each frame a client sends (typ: websocket.TextMessage
// or BinaryMessage); false ends the connection.
type frameHandler func(typ int, data []byte) bool

// wsReader hands every message of a client to handle, within rate_limit.
// What gorilla does not refuse by itself ends the connection with the code
// of its readRefusal: a message beyond max_message_size (1009; gorilla finds
// frames longer than its read limit, messageReader the compressed ones that
// inflate beyond it), text that is not UTF-8 (1007), a close frame with a
// 1-byte body (1002). It is driven either by a goroutine of its own (loop)
// or, on Linux, by the poller, one message at a time (next).
type wsReader struct {
	c       *fanout.Client
	l       *wsLink
	handle  frameHandler
	limiter *rate.Limiter // nil: no rate_limit
	mr      messageReader
	// wireLimit is gorilla's read limit: the payload bytes of a message
	// on the wire.
	wireLimit int64
	frames    func() // counts a message handled
}

func (h *Handler) newWSReader(c *fanout.Client, l *wsLink, handle frameHandler) *wsReader {
	rd := &wsReader{c: c, l: l, handle: handle, mr: messageReader{limit: h.MaxMessageSize}, frames: h.metrics.framesReceived.Inc}
	if h.RateLimit > 0 {
		rd.limiter = rate.NewLimiter(rate.Limit(h.RateLimit), h.RateLimitBurst)
	}
	conn := l.conn
	rd.wireLimit = readLimit(h.MaxMessageSize, l.out.deflate)
	conn.SetReadLimit(rd.wireLimit)
	conn.SetCloseHandler(func(code int, _ string) error {
		if l.out.frames.oneByteClose {
			return errCloseBody
		}
		// gorilla's own answer: the code back, or no body for none.
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(fanout.WriteWait))
		return nil
	})
	return rd
}

// next reads one message and hands it on; false: the connection ends.
func (rd *wsReader) next() bool {
	typ, data, err := rd.mr.read(rd.l.conn)
	if err != nil {
		if refused := (*readRefusal)(nil); errors.As(err, &refused) {
			rd.c.Close(refused.code, refused.reason)
		}
		return false
	}
	if rd.limiter != nil && !rd.limiter.Allow() {
		rd.c.Close(protocol.ClosePolicyViolation, "rate limit exceeded")
		return false
	}
	rd.frames()
	return rd.handle(typ, data)
}

// loop is the goroutine reader: it blocks in gorilla's read until the
// connection ends, which a client that answers no ping for pongWait does.
func (rd *wsReader) loop(pongWait time.Duration) {
	conn := rd.l.conn
	_ = conn.SetReadDeadline(time.Now().Add(pongWait))
	conn.SetPongHandler(func(string) error {
		return conn.SetReadDeadline(time.Now().Add(pongWait))
	})
	for rd.next() {
		// After handle: a command may wait seconds for Redis, with no
		// pong read meanwhile.
		_ = conn.SetReadDeadline(time.Now().Add(pongWait))
	}
}
