package redisws

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// These tests run Caddy as separate processes built from ./cmd/caddy, against
// redis-server processes of their own, with real WebSocket clients.

func TestPlainHTTPAndOrigin(t *testing.T) {
	rs := startRedis(t)
	n := startNode(t, "node", siteCaddyfile("", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
	redis_ws /open chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		origins https://app.example.com
	}`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})

	status, body := httpGet(t, n.URL("/ws"))
	if status != http.StatusBadRequest || !strings.Contains(body, "WebSocket endpoint") {
		t.Fatalf("plain GET: %d %q", status, body)
	}
	for _, tc := range []struct {
		path, origin string
		status       int
	}{
		{"/ws", "http://evil.example", http.StatusForbidden},
		{"/ws", "http://" + strings.TrimPrefix(n.URL(""), "http://"), http.StatusSwitchingProtocols},
		{"/ws", "", http.StatusSwitchingProtocols},
		{"/open", "https://app.example.com", http.StatusSwitchingProtocols},
		{"/open", "https://evil.example.com", http.StatusForbidden},
	} {
		header := http.Header{}
		if tc.origin != "" {
			header.Set("Origin", tc.origin)
		}
		c, resp, _ := tryDialWS(t, n.WSURL(tc.path), header)
		if resp == nil || resp.StatusCode != tc.status {
			t.Fatalf("%s with Origin %q: got %v, want %d", tc.path, tc.origin, resp, tc.status)
		}
		if c != nil {
			c.Close()
		}
	}
}

// A frame over max_message_size closes its connection with 1009; nobody
// else notices.
func TestOversizeFrame(t *testing.T) {
	rs := startRedis(t)
	n := chatNode(t, rs.Port, "max_message_size 1KiB")
	big, other := dialWS(t, n.WSURL("/ws"), nil), dialWS(t, n.WSURL("/ws"), nil)
	big.SendText(t, strings.Repeat("x", 1024)) // at the limit: fine
	big.Send(t, websocket.BinaryMessage, make([]byte, 1025))
	if code, _ := big.WaitClosed(t, wait); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
	other.SendText(t, "still here")
	if m := other.Next(t, wait); len(m.Data) != 1024 {
		t.Fatalf("got %v, want the 1 KiB message", m)
	}
	if m := other.Next(t, wait); string(m.Data) != "still here" {
		t.Fatalf("got %v", m)
	}
}

// A client that stops reading is closed alone once its queue is full; the
// others get every message; the node's goroutines go back to where they were.
func TestSlowClient(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := chatNode(t, rs.Port, "send_queue 1MiB")
	base := n.Goroutines(t)

	slow, _, err := wsDialer.Dial(n.WSURL("/ws"), nil) // never read
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast := []*wsClient{dialWS(t, n.WSURL("/ws"), nil), dialWS(t, n.WSURL("/ws"), nil)}

	// Enough data to fill the socket buffers and then the queue. The
	// publisher keeps within a window of what the fast clients have read, so
	// that only a client that does not read can fall 16 messages behind.
	const count, size, window = 600, 64 << 10, 8
	payload := strings.Repeat("s", size-8)
	for i := range count {
		publish(t, rdb, "chat", fmt.Sprintf("%07d:%s", i, payload))
		for _, c := range fast {
			eventually(t, wait, func() bool { return c.Received() > i-window }, "fast client stuck at %d", c.Received())
		}
	}
	for _, c := range fast {
		for i, m := range c.Collect(t, count, wait) {
			if !strings.HasPrefix(string(m.Data), fmt.Sprintf("%07d:", i)) {
				t.Fatalf("fast client: message %d is %.10q", i, m.Data)
			}
		}
	}
	// The slow client, reading now, finds its stream cut short.
	_ = slow.SetReadDeadline(time.Now().Add(wait))
	got := 0
	for {
		_, _, err := slow.ReadMessage()
		if err != nil {
			// 1008 if it could still take the close frame, else cut (1006).
			if ce, ok := err.(*websocket.CloseError); ok && ce.Code != websocket.ClosePolicyViolation && ce.Code != websocket.CloseAbnormalClosure {
				t.Fatalf("slow client closed with %d, want 1008 or a cut connection", ce.Code)
			}
			break
		}
		got++
	}
	if got >= count {
		t.Fatalf("slow client got all %d messages; want it dropped", count)
	}
	t.Logf("slow client got %d of %d messages before it was dropped", got, count)

	for _, c := range fast {
		c.Close()
	}
	eventually(t, wait, func() bool { return n.Goroutines(t) <= base }, "goroutines did not go back to %d", base)
}
