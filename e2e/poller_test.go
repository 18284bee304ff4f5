package e2e

// The epoll poller (Linux, plain TCP): idle WebSockets hold no goroutine,
// frames that come in pieces, between fragments or many in one segment are
// read as gorilla would, the client's pings are answered while it is idle,
// its pongs keep it, and connections the server ends are ended once, with
// nothing left behind. TLS connections keep their goroutine reader.

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/gorilla/websocket"
)

const (
	pollerLoop   = "caddy-redis-ws.(*poller).run"
	readerLoop   = "caddy-redis-ws.(*wsReader).loop"
	connGaugeKey = `caddy_redis_ws_connections{handler="chat"}`
)

// 50 idle WebSockets add one goroutine to the node, the poller's, and none
// once they are gone; they still publish and receive; a reload, which ends
// each of them from the server's side, leaves no reader behind.
func TestPolledIdleConnections(t *testing.T) {
	rs := startRedis(t)
	config := siteCaddyfile("", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
	}`)
	n := startNode(t, "node", config, map[string]string{"REDIS_PORT": fmt.Sprint(rs.Port)})
	base := n.BaseGoroutines(t)
	var clients []*wsClient
	for range 50 {
		clients = append(clients, dialWS(t, n.WSURL("/ws"), nil))
	}
	var dump string
	testkit.Eventually(t, wait, func() bool {
		dump = n.goroutineDump(t)
		return goroutineTotal(t, dump) <= base+1
	}, "50 idle WebSockets: more than the poller's goroutine beside the %d before:\n%v", base, atFailure(func() any { return dump }))
	if !strings.Contains(dump, pollerLoop) || strings.Contains(dump, readerLoop) {
		t.Fatalf("idle plain WebSockets are not the poller's:\n%s", dump)
	}
	clients[7].SendText(t, "from an idle one")
	for _, c := range clients {
		if m := c.Next(t, wait); string(m.Data) != "from an idle one" {
			t.Fatalf("got %v", m)
		}
	}
	for _, c := range clients[:25] {
		c.Close()
	}
	n.Reload(t, strings.Replace(config, "redis_ws /ws chat {", "redis_ws /ws chat {\n\t\treload_close_delay 0s", 1))
	for _, c := range clients[25:] {
		if code, _ := c.WaitClosed(t, wait); code != websocket.CloseServiceRestart {
			t.Fatalf("reload: closed with %d, want 1012", code)
		}
	}
	testkit.Eventually(t, wait, func() bool {
		dump = n.goroutineDump(t)
		return !strings.Contains(dump, pollerLoop) && !strings.Contains(dump, "polledConn")
	}, "the poller still runs with no connection:\n%v", atFailure(func() any { return dump }))
	if got := scrapeMetrics(t, n)[connGaugeKey]; got != 0 {
		t.Fatalf("%s = %v after every connection ended, want 0", connGaugeKey, got)
	}
}

// Frames as a hostile or slow client sends them, read through the poller.
func TestPolledFrames(t *testing.T) {
	rs := startRedis(t)
	n := chatNode(t, rs.Port, "ping_interval 1s")
	base := n.BaseGoroutines(t)
	watcher := dialWS(t, n.WSURL("/ws"), nil)
	expect := func(what string, want ...string) {
		t.Helper()
		for _, w := range want {
			if m := watcher.Next(t, wait); string(m.Data) != w {
				t.Fatalf("%s: got %v, want %q", what, m, w)
			}
		}
	}
	text := func(fin bool, opcode byte, s string) []byte {
		return testkit.ClientFrame(fin, 0, opcode, []byte(s), true, -1)
	}
	ping := func(s string) []byte { return text(true, websocket.PingMessage, s) }
	const cont = 0

	// A message one byte per write, with pauses: read once whole.
	c := rawDial(t, n, "/ws")
	for _, b := range text(true, websocket.TextMessage, "byte by byte") {
		c.write(t, []byte{b})
		time.Sleep(5 * time.Millisecond) // a slow client's pace, not a wait for the server
	}
	expect("one byte per write", "byte by byte")

	// Three messages in one segment, and control frames between fragments.
	c.write(t, slices.Concat(text(true, websocket.TextMessage, "one"), text(true, websocket.TextMessage, "two"), text(true, websocket.BinaryMessage, "three")))
	expect("pipelined", "one", "two", "three")
	c.write(t, slices.Concat(text(false, websocket.TextMessage, "frag"), ping("between"), text(true, websocket.PongMessage, "unasked")))
	c.write(t, text(false, cont, "men"))
	c.write(t, slices.Concat(ping("again"), text(true, cont, "ted")))
	expect("control frames between fragments", "fragmented")
	for _, want := range []string{"between", "again"} {
		if got := c.nextPong(t); got != want {
			t.Fatalf("pong %q, want %q", got, want)
		}
	}

	// A client that answers the server's pings stays past 3 × ping_interval
	// (which it would not if they were not heard: see below), and its own
	// ping is answered while it sends nothing else.
	c.answerPings(t, 3500*time.Millisecond)
	c.write(t, ping("idle"))
	if got := c.nextPong(t); got != "idle" {
		t.Fatalf("pong %q, want \"idle\"", got)
	}
	c.write(t, text(true, websocket.TextMessage, "still here"))
	expect("after answering pings", "still here")
	_ = c.Close()

	for _, tc := range []struct {
		name string
		send []byte
		want int
	}{
		// gorilla refuses it without a close frame of its own.
		{"a length beyond 2^63-1", []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, websocket.CloseMessageTooBig},
		{"a close body of 1 byte after a fragment", slices.Concat(text(false, websocket.TextMessage, "a"), testkit.ClientFrame(true, 0, websocket.CloseMessage, []byte{3}, true, -1)), websocket.CloseProtocolError},
		{"headers of empty fragments beyond max_message_size", slices.Concat(text(false, websocket.BinaryMessage, ""), bytes.Repeat(text(false, cont, ""), 12000)), websocket.CloseMessageTooBig},
		{"silent: never answers pings", nil, -1},
	} {
		c := rawDial(t, n, "/ws")
		if tc.send != nil {
			c.write(t, tc.send)
		}
		if got := c.CloseCode(t); got != tc.want {
			t.Errorf("%s: close code %d, want %d", tc.name, got, tc.want)
		}
		_ = c.Close()
	}
	watcher.Close()
	n.GoroutinesBackTo(t, base)
}

// A wss:// connection keeps its goroutine reader: TLS hides the frames
// from the poller.
func TestTLSKeepsGoroutineReader(t *testing.T) {
	rs := startRedis(t)
	n := tlsInternalNode(t, rs, "")
	dialer := &websocket.Dialer{HandshakeTimeout: wait, TLSClientConfig: &tls.Config{RootCAs: internalRoots(t, n)}}
	var conn *websocket.Conn
	testkit.Eventually(t, wait, func() bool { // the certificate is issued in the background
		var err error
		conn, _, err = dialer.Dial(fmt.Sprintf("wss://localhost:%d/ws", n.Port), nil)
		return err == nil
	}, "wss dial failed")
	defer conn.Close()
	dump := n.goroutineDump(t)
	if !strings.Contains(dump, readerLoop) || strings.Contains(dump, pollerLoop) {
		t.Fatalf("a wss:// connection is not read by its own goroutine:\n%s", dump)
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte("over tls")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	if _, data, err := conn.ReadMessage(); err != nil || string(data) != "over tls" {
		t.Fatalf("got %q, %v", data, err)
	}
}
