package fanout

import (
	"slices"
	"sync"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// link is the connection a client's writer writes to: a WebSocket or an
// event stream. Only the client's writer calls Send and End.
type link interface {
	// Send writes the batch, and a keepalive when ping is set, in one write.
	Send(batch []*frame.Frame, ping bool) error
	// End closes the connection, telling code and reason where the
	// transport can (code 0: none).
	End(code int, reason string)
	// Cut makes a write in progress end within grace.
	Cut(grace time.Duration)
}

const (
	// WriteWait bounds one write to a client; a client that cannot take a
	// batch of frames in that time is gone.
	WriteWait = 10 * time.Second
	// CloseWait bounds the close frame sent when the server ends a connection.
	CloseWait = time.Second
	// keptBatch is the largest batch slice a client keeps between batches;
	// a bigger one goes back to the garbage collector.
	keptBatch = 64
)

// Close codes the server sends, as package protocol names them for clients.
const (
	CloseGoingAway     = protocol.CloseGoingAway       // 1001: Caddy is exiting
	closeTooSlow       = protocol.ClosePolicyViolation // 1008: send queue overflowed
	CloseServiceReload = protocol.CloseServiceRestart  // 1012: config changed
	CloseGap           = protocol.CloseGap             // 4001: messages may have been missed
	closeTokenExpired  = protocol.CloseTokenExpired    // 4003: see ExpireAt
)

// ClientMetrics are the collectors a client updates, resolved for its
// handler by the adapter.
type ClientMetrics struct {
	Deliveries    prometheus.Counter
	DeliveryDrops prometheus.Counter
	SlowClients   prometheus.Counter
	FanoutLatency prometheus.Observer // shared by every handler: no label
}

// Client is one connection: a WebSocket or an event stream. At most one
// writer goroutine runs for it, and only while there is something to write: an idle connection costs
// its reader goroutine and nothing else. Everyone else hands work to the
// writer under mu.
type Client struct {
	link     link
	Channels []string        // channels delivered to this client
	Publish  string          // channel its frames go to; "" = receive-only
	User     string          // who it is, for presence; "" anonymous
	Kind     frame.FrameKind // the frames it takes
	// extra are the channels it joined at run time (Hub.Join), beside
	// Channels; guarded by the hub's mu.
	extra   map[string]struct{}
	metrics *ClientMetrics

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
	seen map[string]frame.Position
	// joining holds the live frames of channels being joined, by channel
	// and presence events channel (see Hub.Join); nil when none is.
	joining   map[string]*joining
	writing   bool // a writer goroutine is running (or the connection is closed)
	connected bool // link is set: writers may start
	pingDue   bool
	ping      *time.Timer
	// expires is when the connection's token expires (zero: never);
	// wakeAt when wake is due (zero: never). expiry fires at the earlier,
	// or before when one moved later (see expiry.go).
	expires time.Time
	wakeAt  time.Time
	wake    func()
	expiry  *time.Timer
	closing bool
	code    int // of the close frame; 0: end without one
	reason  string
}

func NewClient(channels []string, publish string, kind frame.FrameKind, maxQueue int, m *ClientMetrics) *Client {
	return &Client{Channels: channels, Publish: publish, Kind: kind, maxQueue: maxQueue, metrics: m}
}

// Start begins writing to l; frames queued before go first.
func (c *Client) Start(l link, pingInterval time.Duration) {
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

// Enqueue never blocks: a client that lets its queue grow past the limit is
// closed, and nobody else waits for it.
func (c *Client) Enqueue(f *frame.Frame) {
	c.mu.Lock()
	if c.closing || c.replayed(f.Msg) || c.joining != nil && c.hold(f) {
		c.mu.Unlock()
		return
	}
	if c.queued+f.Size > c.maxQueue && c.queued > 0 {
		c.tooSlow(len(c.queue) + 1)
		c.mu.Unlock()
		return
	}
	c.queue = append(c.queue, f)
	c.queued += f.Size
	c.kick()
	c.mu.Unlock()
}

// tooSlow closes a client whose queue passed its limit, counting the
// frames it drops. c.mu held.
func (c *Client) tooSlow(dropped int) {
	c.closeLocked(closeTooSlow, "too slow")
	if c.link != nil {
		c.link.Cut(CloseWait)
	}
	c.metrics.SlowClients.Inc()
	c.metrics.DeliveryDrops.Add(float64(dropped))
}

// replayed reports whether a replay gave the client m already. c.mu held.
func (c *Client) replayed(m *frame.Message) bool {
	if c.seen == nil || m == nil || !m.Recorded() {
		return false
	}
	p, ok := c.seen[m.Channel]
	return ok && p.Epoch == m.Pos.Epoch && m.Pos.Offset <= p.Offset
}

// Prepend puts frames of one channel before everything queued and after
// what earlier calls put there, before the connection starts: the
// subscribed frame and a replay go before live messages. upTo, when set, is
// the last offset of the channel those frames give or tell of: its live
// copies up to it, queued or still to come, are dropped.
func (c *Client) Prepend(ch string, frames []*frame.Frame, upTo *frame.Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if upTo != nil {
		if c.seen == nil {
			c.seen = make(map[string]frame.Position, len(c.Channels))
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

// FirstQueued is the offset of the first queued recorded message of ch in
// epoch, or 0.
func (c *Client) FirstQueued(ch, epoch string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if first, ok := c.firstHeld(ch, epoch); ok {
		return first
	}
	for _, f := range c.queue[c.head:] {
		if m := f.Msg; m != nil && m.Channel == ch && m.Recorded() && m.Pos.Epoch == epoch {
			return m.Pos.Offset
		}
	}
	return 0
}

// Close asks the writer to end the connection, with a close frame unless code
// is 0. Only the first call counts.
func (c *Client) Close(code int, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, text)
}

// closeLocked is close with c.mu held.
func (c *Client) closeLocked(code int, text string) {
	if c.closing {
		return
	}
	c.closing, c.code, c.reason = true, code, text
	c.queue, c.queued, c.head = nil, 0, 0
	if c.expiry != nil {
		c.expiry.Stop()
	}
	c.kick()
}

// Closing tells whether the connection is ending, because the server closes
// it or because it is gone.
func (c *Client) Closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// CloseCode is the code of the close frame the connection ended with, or is
// ending with; 0 when there is none.
func (c *Client) CloseCode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code
}

// kick starts a writer unless one runs. c.mu held.
func (c *Client) kick() {
	if c.connected && !c.writing {
		c.writing = true
		go c.write()
	}
}

// write drains the queue, pings and finally closes the connection; it exits
// when there is nothing left to do.
func (c *Client) write() {
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
		err := c.link.Send(batch, ping)
		if len(batch) > 0 && err == nil {
			c.metrics.Deliveries.Add(float64(len(batch)))
			c.metrics.FanoutLatency.Observe(time.Since(batch[0].At).Seconds())
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
func (c *Client) finish() {
	c.ping.Stop()
	c.link.End(c.code, c.reason)
}
