package redisws

import (
	"slices"
	"sync"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/gorilla/websocket"
)

// link is the connection a client's writer writes to: a WebSocket or an
// event stream. Only the client's writer calls send and end.
type link interface {
	// send writes the batch, and a keepalive when ping is set, in one write.
	send(batch []*frame.Frame, ping bool) error
	// end closes the connection, telling code and reason where the
	// transport can (code 0: none).
	end(code int, reason string)
	// cut makes a write in progress end within grace.
	cut(grace time.Duration)
}

const (
	// writeWait bounds one write to a client; a client that cannot take a
	// batch of frames in that time is gone.
	writeWait = 10 * time.Second
	// closeWait bounds the close frame sent when the server ends a connection.
	closeWait = time.Second
	// keptBatch is the largest batch slice a client keeps between batches;
	// a bigger one goes back to the garbage collector.
	keptBatch = 64
)

// Close codes the server sends (RFC 6455 §7.4.1).
const (
	closeGoingAway     = websocket.CloseGoingAway       // 1001: Caddy is exiting
	closeTooSlow       = websocket.ClosePolicyViolation // 1008: send queue overflowed
	closeServiceReload = websocket.CloseServiceRestart  // 1012: config changed
	closeGap           = 4001                           // private use: messages may have been missed
)

// client is one connection: a WebSocket or an event stream. At most one
// writer goroutine runs for it, and only while there is something to write: an idle connection costs
// its reader goroutine and nothing else. Everyone else hands work to the
// writer under mu.
type client struct {
	link     link
	channels []string        // channels delivered to this client
	publish  string          // channel its frames go to; "" = receive-only
	user     string          // who it is, for presence; "" anonymous
	kind     frame.FrameKind // the frames it takes
	metrics  *handlerMetrics

	pingEvery time.Duration

	mu       sync.Mutex
	queue    []*frame.Frame
	queued   int // bytes in queue
	maxQueue int
	spare    []*frame.Frame // the last batch, reused for the next queue
	head     int            // frames at the queue's head put there by prepend
	// seen is, per channel, the last recorded message a replay gave it or
	// its subscribed frame told it of (prepend): live copies up to it are
	// skipped. nil for a raw client that did not replay.
	seen      map[string]frame.Position
	writing   bool // a writer goroutine is running (or the connection is closed)
	connected bool // link is set: writers may start
	pingDue   bool
	ping      *time.Timer
	closing   bool
	code      int // of the close frame; 0: end without one
	reason    string
}

func newClient(channels []string, publish string, kind frame.FrameKind, maxQueue int, m *handlerMetrics) *client {
	return &client{channels: channels, publish: publish, kind: kind, maxQueue: maxQueue, metrics: m}
}

// start begins writing to l; frames queued before go first.
func (c *client) start(l link, pingInterval time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.link, c.connected, c.pingEvery = l, true, pingInterval
	c.ping = time.AfterFunc(pingInterval, func() {
		c.mu.Lock()
		c.pingDue = true
		c.kick()
		c.mu.Unlock()
	})
	c.kick()
}

// enqueue never blocks: a client that lets its queue grow past the limit is
// closed, and nobody else waits for it.
func (c *client) enqueue(f *frame.Frame) {
	c.mu.Lock()
	if c.closing || c.replayed(f.Msg) {
		c.mu.Unlock()
		return
	}
	if c.queued+f.Size > c.maxQueue && c.queued > 0 {
		dropped := len(c.queue) + 1
		c.closeLocked(closeTooSlow, "too slow")
		if c.link != nil {
			c.link.cut(closeWait)
		}
		c.mu.Unlock()
		c.metrics.slowClients.Inc()
		c.metrics.deliveryDrops.Add(float64(dropped))
		return
	}
	c.queue = append(c.queue, f)
	c.queued += f.Size
	c.kick()
	c.mu.Unlock()
}

// replayed reports whether a replay gave the client m already. c.mu held.
func (c *client) replayed(m *frame.Message) bool {
	if c.seen == nil || m == nil || !m.Recorded() {
		return false
	}
	p, ok := c.seen[m.Channel]
	return ok && p.Epoch == m.Pos.Epoch && m.Pos.Offset <= p.Offset
}

// prepend puts frames of one channel before everything queued and after
// what earlier calls put there, before the connection starts: the
// subscribed frame and a replay go before live messages. upTo, when set, is
// the last offset of the channel those frames give or tell of: its live
// copies up to it, queued or still to come, are dropped.
func (c *client) prepend(ch string, frames []*frame.Frame, upTo *frame.Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if upTo != nil {
		if c.seen == nil {
			c.seen = make(map[string]frame.Position, len(c.channels))
		}
		c.seen[ch] = *upTo
		live := c.queue[c.head:]
		kept := live[:0]
		for _, f := range live {
			if c.replayed(f.Msg) {
				c.queued -= f.Size
				continue
			}
			kept = append(kept, f)
		}
		clear(live[len(kept):])
		c.queue = c.queue[:c.head+len(kept)]
	}
	// Not counted in queued: a replay holds at most maxQueue bytes of
	// messages (catchUp reads no more), and must not make the first live
	// message look like a slow client. Until the writer takes the queue, a
	// new client holds at most its replay and maxQueue of live messages.
	c.queue = slices.Insert(c.queue, c.head, frames...)
	c.head += len(frames)
}

// firstQueued is the offset of the first queued recorded message of ch in
// epoch, or 0.
func (c *client) firstQueued(ch, epoch string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.queue[c.head:] {
		if m := f.Msg; m != nil && m.Channel == ch && m.Recorded() && m.Pos.Epoch == epoch {
			return m.Pos.Offset
		}
	}
	return 0
}

// close asks the writer to end the connection, with a close frame unless code
// is 0. Only the first call counts.
func (c *client) Close(code int, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, text)
}

// closeLocked is close with c.mu held.
func (c *client) closeLocked(code int, text string) {
	if c.closing {
		return
	}
	c.closing, c.code, c.reason = true, code, text
	c.queue, c.queued, c.head = nil, 0, 0
	c.kick()
}

// closeCode is the code of the close frame the connection ended with, or is
// ending with; 0 when there is none.
func (c *client) closeCode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code
}

// kick starts a writer unless one runs. c.mu held.
func (c *client) kick() {
	if c.connected && !c.writing {
		c.writing = true
		go c.write()
	}
}

// write drains the queue, pings and finally closes the connection; it exits
// when there is nothing left to do.
func (c *client) write() {
	for {
		c.mu.Lock()
		ping, closing := c.pingDue, c.closing
		if len(c.queue) == 0 && !ping && !closing {
			c.writing = false
			c.mu.Unlock()
			return
		}
		batch := c.queue
		c.queue, c.queued, c.spare, c.head = c.spare, 0, nil, 0
		c.pingDue = false
		c.mu.Unlock()

		if closing {
			c.finish()
			return // writing stays true: no writer starts again
		}
		err := c.link.send(batch, ping)
		if len(batch) > 0 && err == nil {
			c.metrics.deliveries.Add(float64(len(batch)))
			c.metrics.fanoutLatency.Observe(time.Since(batch[0].At).Seconds())
		}
		if ping {
			c.ping.Reset(c.pingEvery)
		}
		clear(batch)
		c.spare = nil
		if cap(batch) <= keptBatch {
			c.spare = batch[:0]
		}
		if err != nil {
			c.Close(0, "")
		}
	}
}

// finish ends the connection, which ends its reader.
func (c *client) finish() {
	c.ping.Stop()
	c.link.end(c.code, c.reason)
}
