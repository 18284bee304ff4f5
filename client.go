package redisws

import (
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// writeWait bounds one write to a client; a client that cannot take a
	// frame in that time is gone.
	writeWait = 10 * time.Second
	// closeWait bounds the close frame sent when the server ends a connection.
	closeWait = time.Second
)

// Close codes the server sends (RFC 6455 §7.4.1).
const (
	closeGoingAway     = websocket.CloseGoingAway       // 1001: Caddy is exiting
	closeTooSlow       = websocket.ClosePolicyViolation // 1008: send queue overflowed
	closeServiceReload = websocket.CloseServiceRestart  // 1012: config changed
)

// client is one WebSocket connection. Its writer goroutine is the only one
// that writes to the connection; everyone else signals it through send and
// done.
type client struct {
	conn     *websocket.Conn
	channels []string // channels delivered to this client
	publish  string   // channel its frames go to; "" = receive-only
	send     chan *websocket.PreparedMessage

	once      sync.Once
	done      chan struct{} // closed by close
	closeCode int           // 0: end without a close frame
	closeText string
}

func newClient(channels []string, publish string, queue int) *client {
	return &client{
		channels: channels,
		publish:  publish,
		send:     make(chan *websocket.PreparedMessage, queue),
		done:     make(chan struct{}),
	}
}

// enqueue never blocks: a client that lets its queue fill up is closed.
func (c *client) enqueue(m *websocket.PreparedMessage) {
	select {
	case c.send <- m:
	default:
		c.close(closeTooSlow, "too slow")
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
		select {
		case m := <-c.send:
			_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WritePreparedMessage(m); err != nil {
				c.close(0, "")
				return
			}
		case <-ticker.C:
			_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				c.close(0, "")
				return
			}
		case <-c.done:
			if c.closeCode != 0 {
				msg := websocket.FormatCloseMessage(c.closeCode, c.closeText)
				_ = c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeWait))
			}
			return
		}
	}
}
