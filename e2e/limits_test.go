package e2e

// Limits: max_connections, rate_limit, max_message_size and send_queue (a
// client that stops reading) refuse or close the one client over them and
// leave the others alone; send_buffer sets each connection's kernel send
// buffer.

import (
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/gorilla/websocket"
)

// Beyond max_connections an upgrade gets 503 with Retry-After; the clients
// already connected are not affected.
func TestMaxConnections(t *testing.T) {
	rs := startRedis(t)
	n := chatNode(t, rs.Port, "max_connections 2")
	a, b := dialWS(t, n.WSURL("/ws"), nil), dialWS(t, n.WSURL("/ws"), nil)
	_, resp, err := tryDialWS(t, n.WSURL("/ws"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third connection: want 503 with Retry-After, got %v %v", resp, err)
	}
	a.SendText(t, "still fine")
	for _, c := range []*wsClient{a, b} {
		if m := c.Next(t, wait); string(m.Data) != "still fine" {
			t.Fatalf("got %v", m)
		}
	}
	a.Close()
	testkit.Eventually(t, wait, func() bool {
		c, _, err := tryDialWS(t, n.WSURL("/ws"), nil)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "no room after a client left")
}

// A client that sends faster than rate_limit (beyond its burst) is closed
// with 1008; the others are not.
func TestRateLimit(t *testing.T) {
	rs := startRedis(t)
	n := chatNode(t, rs.Port, "rate_limit 2 3")
	flood, calm := dialWS(t, n.WSURL("/ws"), nil), dialWS(t, n.WSURL("/ws"), nil)
	for i := range 20 {
		if flood.TrySend(websocket.TextMessage, []byte(strconv.Itoa(i))) != nil {
			break
		}
	}
	if code, _ := flood.WaitClosed(t, wait); code != websocket.ClosePolicyViolation {
		t.Fatalf("flooding client closed with %d, want 1008", code)
	}
	for i, m := range calm.Collect(t, 3, wait) { // the burst went through
		if string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("message %d is %v", i, m)
		}
	}
	calm.SendText(t, "calm")
	for {
		if m := calm.Next(t, wait); string(m.Data) == "calm" {
			break
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
	base := n.BaseGoroutines(t)

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
			testkit.Eventually(t, wait, func() bool { return c.Received() > i-window }, "fast client stuck at %v", atFailure(func() any { return c.Received() }))
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
	n.GoroutinesBackTo(t, base)
}

// send_buffer sets the kernel send buffer of each connection's socket.
func TestSendBuffer(t *testing.T) {
	rs := startRedis(t)
	n := chatNode(t, rs.Port, "send_buffer 64KiB")
	c := dialWS(t, n.WSURL("/ws"), nil)
	local := c.Conn.NetConn().LocalAddr().(*net.TCPAddr).Port
	// ss shows the node's end of this connection: source = node, destination = our port.
	out, err := exec.Command("ss", "-tmnH", "state", "established", fmt.Sprintf("( sport = :%d and dport = :%d )", n.Port, local)).CombinedOutput()
	if err != nil {
		t.Fatalf("ss (iproute2): %v\n%s", err, out)
	}
	if !strings.Contains(string(out), ",tb131072,") { // Linux doubles SO_SNDBUF
		t.Fatalf("want the node's socket send buffer at 2 × 64 KiB, ss says:\n%s", out)
	}
}
