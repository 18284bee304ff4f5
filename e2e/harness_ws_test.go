package e2e

// The WebSocket test clients (gorilla): wsClient, whose reader goroutine
// queues every message and whose every wait has a deadline, and counter, a
// light one for many connections that only counts what it reads.

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

type wsMessage struct {
	Type int
	Data []byte
}

func (m wsMessage) String() string {
	if m.Type == websocket.TextMessage {
		return fmt.Sprintf("text %q", m.Data)
	}
	return fmt.Sprintf("type %d %q", m.Type, m.Data)
}

// maxQueued bounds the messages a client keeps unread.
const maxQueued = 1_000_000

type wsClient struct {
	Conn *websocket.Conn
	URL  string

	wmu sync.Mutex // serialises data writes

	mu       sync.Mutex
	queue    []wsMessage
	received int
	overflow bool
	notify   chan struct{} // cap 1: something was queued

	done      chan struct{} // closed when the reader has ended
	closeErr  error         // valid after done
	closeCode int           // valid after done
	closedAt  time.Time     // valid after done

	closeOnce sync.Once
}

var wsDialer = &websocket.Dialer{
	Proxy:            nil, // loopback only
	HandshakeTimeout: 10 * time.Second,
}

// tryDialWS dials without failing the test. On a refused handshake it
// returns websocket.ErrBadHandshake and the response; its Body holds (up to
// 1 KiB of) the response body and is readable by the caller.
func tryDialWS(t testing.TB, url string, header http.Header) (*wsClient, *http.Response, error) {
	t.Helper()
	return tryDialWSWith(t, wsDialer, url, header)
}

// tryDialWSWith is tryDialWS with a dialer of the caller's.
func tryDialWSWith(t testing.TB, d *websocket.Dialer, url string, header http.Header) (*wsClient, *http.Response, error) {
	t.Helper()
	conn, resp, err := d.Dial(url, header)
	if err != nil {
		return nil, resp, err
	}
	c := &wsClient{
		Conn:   conn,
		URL:    url,
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	go c.readLoop()
	t.Cleanup(c.Close)
	return c, resp, nil
}

// dialWS dials or fails the test with the HTTP status and body.
func dialWS(t testing.TB, url string, header http.Header) *wsClient {
	t.Helper()
	c, resp, err := tryDialWS(t, url, header)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(resp.Body)
			t.Fatalf("dial %s: %v (HTTP %s, body %q)", url, err, resp.Status, body)
		}
		t.Fatalf("dial %s: %v", url, err)
	}
	return c
}

func (c *wsClient) readLoop() {
	for {
		typ, data, err := c.Conn.ReadMessage()
		if err != nil {
			code := -1
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
				code = ce.Code
			}
			c.mu.Lock()
			c.closeErr, c.closeCode, c.closedAt = err, code, time.Now()
			c.mu.Unlock()
			close(c.done)
			return
		}
		c.mu.Lock()
		c.received++
		if len(c.queue) < maxQueued {
			c.queue = append(c.queue, wsMessage{Type: typ, Data: data})
		} else {
			c.overflow = true
		}
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
}

// Received returns how many messages arrived so far (read or not).
func (c *wsClient) Received() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.received
}

type popResult int

const (
	popMessage popResult = iota
	popTimeout
	popClosed
)

// pop takes the next message, waiting until deadline.
func (c *wsClient) pop(deadline time.Time) (wsMessage, popResult) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		c.mu.Lock()
		if len(c.queue) > 0 {
			m := c.queue[0]
			c.queue[0] = wsMessage{}
			c.queue = c.queue[1:]
			if len(c.queue) == 0 {
				c.queue = nil
			}
			c.mu.Unlock()
			return m, popMessage
		}
		c.mu.Unlock()
		select {
		case <-c.done:
			// the reader queued everything before closing done
			c.mu.Lock()
			empty := len(c.queue) == 0
			c.mu.Unlock()
			if empty {
				return wsMessage{}, popClosed
			}
		case <-c.notify:
		case <-timer.C:
			return wsMessage{}, popTimeout
		}
	}
}

func (c *wsClient) closeDesc() string {
	select {
	case <-c.done:
		return fmt.Sprintf("code %d, %v", c.closeCode, c.closeErr)
	default:
		return "open"
	}
}

func (c *wsClient) checkOverflow(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	o := c.overflow
	c.mu.Unlock()
	if o {
		t.Fatalf("ws %s: more than %d unread messages; some were dropped by the test client", c.URL, maxQueued)
	}
}

// Send writes one message (safe from several goroutines) or fails the test.
// From goroutines other than the test's, prefer TrySend.
func (c *wsClient) Send(t testing.TB, typ int, data []byte) {
	t.Helper()
	if err := c.TrySend(typ, data); err != nil {
		t.Fatalf("ws %s: send: %v", c.URL, err)
	}
}

// TrySend writes one message (10s write deadline) and returns the error.
func (c *wsClient) TrySend(typ int, data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.Conn.WriteMessage(typ, data)
}

// SendText sends a text message.
func (c *wsClient) SendText(t testing.TB, s string) {
	t.Helper()
	c.Send(t, websocket.TextMessage, []byte(s))
}

// Next returns the next message; it fails on timeout or on a closed
// connection with nothing left to read.
func (c *wsClient) Next(t testing.TB, timeout time.Duration) wsMessage {
	t.Helper()
	c.checkOverflow(t)
	m, r := c.pop(time.Now().Add(timeout))
	switch r {
	case popTimeout:
		t.Fatalf("ws %s: no message within %s", c.URL, timeout)
	case popClosed:
		t.Fatalf("ws %s: connection closed while waiting for a message (%s)", c.URL, c.closeDesc())
	}
	return m
}

// Collect returns the next n messages, which must all arrive within timeout.
// Messages beyond n stay queued.
func (c *wsClient) Collect(t testing.TB, n int, timeout time.Duration) []wsMessage {
	t.Helper()
	c.checkOverflow(t)
	deadline := time.Now().Add(timeout)
	out := make([]wsMessage, 0, n)
	for len(out) < n {
		m, r := c.pop(deadline)
		switch r {
		case popTimeout:
			t.Fatalf("ws %s: %d of %d messages arrived within %s", c.URL, len(out), n, timeout)
		case popClosed:
			t.Fatalf("ws %s: %d of %d messages arrived before the connection closed (%s)", c.URL, len(out), n, c.closeDesc())
		}
		out = append(out, m)
	}
	return out
}

// ExpectNothing fails if a message arrives within the window (the one fixed
// wait allowed: asserting absence). A close during the window is not a
// message; it is logged.
func (c *wsClient) ExpectNothing(t testing.TB, within time.Duration) {
	t.Helper()
	m, r := c.pop(time.Now().Add(within))
	switch r {
	case popMessage:
		t.Fatalf("ws %s: expected no message within %s, got %s", c.URL, within, m)
	case popClosed:
		t.Logf("ws %s: closed during ExpectNothing (%s)", c.URL, c.closeDesc())
	}
}

// WaitClosed waits until the reader saw the connection end. code is the
// close frame's code, or -1 for an end without a close frame (gorilla's
// 1006 included); at is when the end was observed.
func (c *wsClient) WaitClosed(t testing.TB, timeout time.Duration) (code int, at time.Time) {
	t.Helper()
	select {
	case <-c.done:
		return c.closeCode, c.closedAt
	case <-time.After(timeout):
		t.Fatalf("ws %s: still open after %s", c.URL, timeout)
		return 0, time.Time{}
	}
}

// Closed reports whether the reader saw the connection end.
func (c *wsClient) Closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Close sends a close frame (1000), waits up to 2s for the server's answer,
// then closes the TCP connection and waits for the reader. Idempotent.
func (c *wsClient) Close() {
	c.closeOnce.Do(func() {
		if !c.Closed() {
			_ = c.Conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
				time.Now().Add(time.Second))
			select {
			case <-c.done:
			case <-time.After(2 * time.Second):
			}
		}
		_ = c.Conn.Close()
		<-c.done
	})
}
