package redisws

import (
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

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
)

// frame is one Redis message, encoded once and shared by every client.
type frame struct {
	msg  *websocket.PreparedMessage
	size int // payload bytes, for the send queue limit
}

// client is one WebSocket connection. Its writer goroutine is the only one
// that writes frames to the connection; everyone else signals it through the
// queue, wake and done.
type client struct {
	conn     *websocket.Conn
	out      *corkConn
	channels []string // channels delivered to this client
	publish  string   // channel its frames go to; "" = receive-only

	mu       sync.Mutex
	queue    []*frame
	queued   int // bytes in queue
	maxQueue int
	spare    []*frame      // the last batch, reused for the next queue
	wake     chan struct{} // cap 1: the queue is not empty

	once      sync.Once
	done      chan struct{} // closed by close
	closeCode int           // 0: end without a close frame
	closeText string
}

func newClient(channels []string, publish string, maxQueue int) *client {
	return &client{
		channels: channels,
		publish:  publish,
		maxQueue: maxQueue,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
}

// enqueue never blocks: a client that lets its queue grow past the limit is
// closed, and nobody else waits for it.
func (c *client) enqueue(f *frame) {
	c.mu.Lock()
	if c.queued+f.size > c.maxQueue && c.queued > 0 {
		c.mu.Unlock()
		c.close(closeTooSlow, "too slow")
		return
	}
	c.queue = append(c.queue, f)
	c.queued += f.size
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// close asks the writer to end the connection, with a close frame unless code
// is 0. Only the first call counts.
func (c *client) close(code int, text string) {
	c.once.Do(func() {
		c.closeCode, c.closeText = code, text
		close(c.done)
	})
}

// writeLoop owns every write to the connection until close is called or a
// write fails; it then closes the connection, which ends the reader.
func (c *client) writeLoop(pingInterval time.Duration) {
	ticker := time.NewTicker(pingInterval)
	defer func() {
		ticker.Stop()
		_ = c.conn.Close()
	}()
	for {
		var err error
		select {
		case <-c.wake:
			err = c.writeQueued()
		case <-ticker.C:
			c.out.cork()
			_ = c.conn.WriteControl(websocket.PingMessage, nil, time.Time{})
			err = c.out.uncork(writeWait)
		case <-c.done:
			if c.closeCode != 0 {
				c.out.cork()
				_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(c.closeCode, c.closeText), time.Time{})
				_ = c.out.uncork(closeWait)
			}
			return
		}
		if err != nil {
			c.close(0, "")
			return
		}
	}
}

// writeQueued writes every queued frame, each its own WebSocket frame, in
// one write to the socket.
func (c *client) writeQueued() error {
	c.mu.Lock()
	batch := c.queue
	c.queue, c.queued = c.spare, 0
	c.mu.Unlock()

	c.out.cork()
	for _, f := range batch {
		if err := c.conn.WritePreparedMessage(f.msg); err != nil {
			_ = c.out.uncork(writeWait)
			return err
		}
	}
	err := c.out.uncork(writeWait)

	clear(batch)
	c.spare = nil
	if cap(batch) <= keptBatch {
		c.spare = batch[:0]
	}
	return err
}
