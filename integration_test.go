package redisws

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
)

// These tests run Caddy as separate processes built from ./cmd/caddy, against
// redis-server processes of their own, with real WebSocket clients.

func TestListModules(t *testing.T) {
	out, err := exec.Command(caddyBinary(t), "list-modules").CombinedOutput()
	if err != nil {
		t.Fatalf("caddy list-modules: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^http\.handlers\.redis_ws$`).Match(out) {
		t.Fatalf("http.handlers.redis_ws missing from caddy list-modules:\n%s", out)
	}
}

// Every frame sent by any client reaches every client on every node, the
// sender too, exactly once and in the order each sender sent them.
func TestFanOut(t *testing.T) {
	for _, nodes := range []int{2, 4} {
		t.Run(fmt.Sprintf("nodes-%d", nodes), func(t *testing.T) {
			rs := startRedis(t)
			ns := startNodes(t, nodes, exampleCaddyfile(t), rs)
			const perNode, perSender = 3, 30
			var clients []*wsClient
			for _, n := range ns {
				for range perNode {
					clients = append(clients, dialWS(t, n.WSURL("/ws"), nil))
				}
			}
			var wg sync.WaitGroup
			for i, c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for seq := range perSender {
						c.SendText(t, fmt.Sprintf("%d:%d", i, seq))
					}
				}()
			}
			wg.Wait()
			total := len(clients) * perSender
			for ci, c := range clients {
				next := make([]int, len(clients))
				for _, m := range c.Collect(t, total, wait) {
					var sender, seq int
					if _, err := fmt.Sscanf(string(m.Data), "%d:%d", &sender, &seq); err != nil || m.Type != websocket.TextMessage {
						t.Fatalf("client %d: unexpected %v", ci, m)
					}
					if seq != next[sender] {
						t.Fatalf("client %d: from sender %d got seq %d, want %d", ci, sender, seq, next[sender])
					}
					next[sender]++
				}
				c.ExpectNothing(t, 0)
			}
			clients[0].ExpectNothing(t, 300*time.Millisecond) // no duplicate arrives late
		})
	}
}

// JSON configuration works like the Caddyfile.
func TestJSONConfig(t *testing.T) {
	rs := startRedis(t)
	config := `{
		"admin": {"listen": "127.0.0.1:{env.ADMIN_PORT}"},
		"apps": {"http": {"servers": {"srv0": {
			"listen": [":{env.PORT}"],
			"routes": [{
				"match": [{"path": ["/ws"]}],
				"handle": [{"handler": "redis_ws", "subscribe": ["chat"], "redis": {"url": "redis://127.0.0.1:{env.REDIS_PORT}"}}]
			}]
		}}}}
	}`
	n := startNodeJSON(t, config, map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
	a, b := dialWS(t, n.WSURL("/ws"), nil), dialWS(t, n.WSURL("/ws"), nil)
	a.SendText(t, "over json")
	for _, c := range []*wsClient{a, b} {
		if m := c.Next(t, wait); string(m.Data) != "over json" {
			t.Fatalf("got %v", m)
		}
	}
}

// redis-cli publish reaches every client; redis-cli subscribe sees exactly
// what clients send; binary stays binary.
func TestRedisCLIInterop(t *testing.T) {
	rs := startRedis(t)
	ns := startNodes(t, 2, exampleCaddyfile(t), rs)
	clients := []*wsClient{dialWS(t, ns[0].WSURL("/ws"), nil), dialWS(t, ns[1].WSURL("/ws"), nil)}

	out, err := exec.Command("redis-cli", "-p", strconv.Itoa(rs.Port), "publish", "chat", "hi").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "2" {
		t.Fatalf("redis-cli publish: %v, %q (want 2 receivers: one per node)", err, out)
	}
	for _, c := range clients {
		if m := c.Next(t, wait); m.Type != websocket.TextMessage || string(m.Data) != "hi" {
			t.Fatalf("want text %q, got %v", "hi", m)
		}
	}

	// redis-cli subscribe prints each reply element on its own line.
	ctx, cancel := context.WithCancel(context.Background())
	sub := exec.CommandContext(ctx, "redis-cli", "-p", strconv.Itoa(rs.Port), "subscribe", "chat")
	stdout, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = sub.Wait() })
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	rdb := rs.Client(t)
	eventually(t, wait, func() bool { return numsub(t, rdb, "chat") == 3 }, "redis-cli subscribe not counted")

	sent := []string{"hello from a", "ünïcödé ✓", `quotes "and" \backslash`}
	for _, s := range sent { // one sender: its order is kept
		clients[1].SendText(t, s)
	}
	var got []string
	timeout := time.After(wait)
	for len(got) < len(sent) {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("redis-cli subscribe ended; got %q", got)
			}
			if l == "message" {
				<-lines // channel
				got = append(got, <-lines)
			}
		case <-timeout:
			t.Fatalf("redis-cli subscribe got %q, want %q", got, sent)
		}
	}
	if strings.Join(got, "\n") != strings.Join(sent, "\n") {
		t.Fatalf("redis-cli subscribe got %q, want %q", got, sent)
	}

	// Byte for byte, binary included, through a Go subscriber.
	ps := rdb.Subscribe(context.Background(), "chat")
	defer ps.Close()
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	binary := []byte{0xff, 0x00, 0xfe, 'x', 0x80}
	clients[0].Send(t, websocket.BinaryMessage, binary)
	msg, err := ps.ReceiveTimeout(context.Background(), wait)
	if err != nil || msg.(*redis.Message).Payload != string(binary) {
		t.Fatalf("redis got %v, %v; want %q", msg, err, binary)
	}
	for _, c := range clients {
		for { // skip the text messages sent above
			m := c.Next(t, wait)
			if m.Type == websocket.BinaryMessage {
				if string(m.Data) != string(binary) {
					t.Fatalf("got %v, want binary %q", m, binary)
				}
				break
			}
		}
	}
	publish(t, rdb, "chat", "\xc3\x28") // invalid UTF-8 from Redis goes out as binary
	for _, c := range clients {
		if m := c.Next(t, wait); m.Type != websocket.BinaryMessage || string(m.Data) != "\xc3\x28" {
			t.Fatalf("got %v, want binary", m)
		}
	}
}

// Rooms are separate channels, subscribed while a node has clients in them.
func TestRooms(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	ns := startNodes(t, 2, exampleCaddyfile(t), rs)

	a1 := dialWS(t, ns[0].WSURL("/rooms/a"), nil)
	if got := numsub(t, rdb, "room:a"); got != 1 {
		t.Fatalf("NUMSUB room:a = %d once a client is in, want 1", got)
	}
	a2 := dialWS(t, ns[1].WSURL("/rooms/a"), nil)
	b2 := dialWS(t, ns[1].WSURL("/rooms/b"), nil)
	if got := numsub(t, rdb, "room:a"); got != 2 {
		t.Fatalf("NUMSUB room:a = %d, want 2 (one per node)", got)
	}
	a1.SendText(t, "for a")
	b2.SendText(t, "for b")
	for _, c := range []*wsClient{a1, a2} {
		if m := c.Next(t, wait); string(m.Data) != "for a" {
			t.Fatalf("room a got %v", m)
		}
	}
	if m := b2.Next(t, wait); string(m.Data) != "for b" {
		t.Fatalf("room b got %v", m)
	}
	a1.ExpectNothing(t, 300*time.Millisecond)
	a2.ExpectNothing(t, 0)

	a1.Close()
	eventually(t, wait, func() bool { return numsub(t, rdb, "room:a") == 1 }, "node1 kept room:a after its last client left")
	a2.Close()
	b2.Close()
	eventually(t, wait, func() bool {
		chans, err := rdb.PubSubChannels(context.Background(), "room:*").Result()
		return err == nil && len(chans) == 0
	}, "rooms still subscribed after every client left")

	// A glob character is just a character: room "*" is channel "room:*".
	glob := dialWS(t, ns[0].WSURL("/rooms/%2A"), nil)
	a1 = dialWS(t, ns[0].WSURL("/rooms/a"), nil)
	publish(t, rdb, "room:a", "for a only")
	publish(t, rdb, "room:*", "for the room named *")
	if m := glob.Next(t, wait); string(m.Data) != "for the room named *" {
		t.Fatalf("room * got %v", m)
	}
	if m := a1.Next(t, wait); string(m.Data) != "for a only" {
		t.Fatalf("room a got %v", m)
	}
	a1.ExpectNothing(t, 300*time.Millisecond)

	// Names that come out wrong are refused before the upgrade.
	for path, want := range map[string]string{
		"/rooms/":                            "empty",
		"/rooms/" + strings.Repeat("x", 300): "bytes long",
		"/rooms/a%01b":                       "control character",
	} {
		_, resp, err := tryDialWS(t, ns[0].WSURL(path), nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%s: want 400, got %v %v", path, resp, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), want) {
			t.Fatalf("%s: body %q does not say %q", path, body, want)
		}
	}
}

// /news clients receive, and what they send is not published.
func TestReceiveOnly(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := startNodes(t, 1, exampleCaddyfile(t), rs)[0]
	c := dialWS(t, n.WSURL("/news"), nil)
	ps := rdb.Subscribe(context.Background(), "news")
	defer ps.Close()
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.SendText(t, "should go nowhere")
	publish(t, rdb, "news", "extra")
	if m := c.Next(t, wait); string(m.Data) != "extra" {
		t.Fatalf("got %v", m)
	}
	// Redis delivers in order: had the client's frame been published, it
	// would have come before "extra".
	msg, err := ps.ReceiveTimeout(context.Background(), wait)
	if err != nil || msg.(*redis.Message).Payload != "extra" {
		t.Fatalf("the news channel saw %v, %v; want only the PUBLISH", msg, err)
	}
	if c.Closed() {
		t.Fatal("a receive-only client that sends is closed; want it kept")
	}
}

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

// Reloads keep the shared subscriber; an unchanged handler keeps its
// connections and loses nothing, a changed one closes them with 1012.
func TestReloadUnchangedHandler(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := startNodes(t, 1, exampleCaddyfile(t), rs)[0]
	id := subscriberID(t, rdb)
	clients := []*wsClient{dialWS(t, n.WSURL("/ws"), nil), dialWS(t, n.WSURL("/rooms/x"), nil)}

	// Publish steadily while the config is reloaded twice.
	const count = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range count {
			rdb.Publish(context.Background(), "chat", strconv.Itoa(i))
			rdb.Publish(context.Background(), "room:x", strconv.Itoa(i))
			time.Sleep(5 * time.Millisecond) // pacing the publisher, not waiting for a result
		}
	}()
	changedElsewhere := strings.Replace(exampleCaddyfile(t), "respond /health 200", "respond /health 200\n\trespond /other 204", 1)
	n.Reload(t, changedElsewhere)
	n.Reload(t, exampleCaddyfile(t))
	<-done
	for _, c := range clients {
		for i, m := range c.Collect(t, count, wait) {
			if string(m.Data) != strconv.Itoa(i) {
				t.Fatalf("message %d is %v", i, m)
			}
		}
		if c.Closed() {
			t.Fatal("connection closed by a reload that left its handler unchanged")
		}
	}
	if after := subscriberID(t, rdb); after != id {
		t.Fatalf("subscriber connection changed across reloads: %s → %s", id, after)
	}
	// The old instance still serves its client both ways.
	clients[0].SendText(t, "after reload")
	if m := clients[0].Next(t, wait); string(m.Data) != "after reload" {
		t.Fatalf("got %v", m)
	}
}

func TestReloadChangedHandler(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	const delay = 2 * time.Second
	withDelay := func(extra string) string {
		return siteCaddyfile("", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		reload_close_delay 2s
		`+extra+`
	}
	respond /health 200`)
	}
	n := startNode(t, "node", withDelay(""), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
	id := subscriberID(t, rdb)
	var clients []*wsClient
	for range 10 {
		clients = append(clients, dialWS(t, n.WSURL("/ws"), nil))
	}
	n.Reload(t, withDelay("send_queue 2MiB"))
	first, last := time.Time{}, time.Time{}
	for _, c := range clients {
		code, at := c.WaitClosed(t, wait)
		if code != websocket.CloseServiceRestart {
			t.Fatalf("close code %d, want 1012", code)
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	if spread := last.Sub(first); spread < delay/2 {
		t.Fatalf("closes spread over %s; want them spread over about %s", spread, delay)
	}
	// New clients get the new handler, through the same subscriber.
	c := dialWS(t, n.WSURL("/ws"), nil)
	publish(t, rdb, "chat", "new config")
	if m := c.Next(t, wait); string(m.Data) != "new config" {
		t.Fatalf("got %v", m)
	}
	if after := subscriberID(t, rdb); after != id {
		t.Fatalf("subscriber connection changed across the reload: %s → %s", id, after)
	}

	// Removing the handler closes its clients too (delay 0: at once).
	n.Reload(t, siteCaddyfile("", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		reload_close_delay 0
	}`))
	c = dialWS(t, n.WSURL("/ws"), nil)
	n.Reload(t, siteCaddyfile("", "\trespond /health 200"))
	if code, _ := c.WaitClosed(t, wait); code != websocket.CloseServiceRestart {
		t.Fatalf("handler removed: close code %d, want 1012", code)
	}
	eventually(t, wait, func() bool { return len(subscriberIDs(t, rdb)) == 0 }, "subscriber still connected after the last handler left")
}

// caddy stop and SIGTERM close every connection with 1001.
func TestStopClosesWithGoingAway(t *testing.T) {
	rs := startRedis(t)
	ns := startNodes(t, 2, exampleCaddyfile(t), rs)
	for i, stop := range []func(){func() { ns[0].Stop(t) }, func() { ns[1].Signal(t, syscall.SIGTERM) }} {
		clients := []*wsClient{dialWS(t, ns[i].WSURL("/ws"), nil), dialWS(t, ns[i].WSURL("/rooms/z"), nil)}
		stop()
		for _, c := range clients {
			if code, _ := c.WaitClosed(t, wait); code != websocket.CloseGoingAway {
				t.Fatalf("node %d: close code %d, want 1001", i+1, code)
			}
		}
	}
}

// Redis down at start: the node serves; it connects by itself once Redis is
// there, with one warning and one info.
func TestRedisDownAtStart(t *testing.T) {
	port := freePort(t)
	n := startNode(t, "node", exampleCaddyfile(t), map[string]string{"REDIS_PORT": strconv.Itoa(port)})
	c := dialWS(t, n.WSURL("/ws"), nil)
	c.SendText(t, "sent while redis is down")
	eventually(t, wait, func() bool { return countLines(n.Logs(), `"warn"`, "redis unavailable") == 1 }, "no warning about redis")

	rs := startRedisOnPort(t, port)
	rdb := rs.Client(t)
	eventually(t, wait, func() bool { return numsub(t, rdb, "chat") == 1 }, "node did not subscribe once redis came up")
	// The frame held in the outbox is published on recovery.
	if m := c.Next(t, wait); string(m.Data) != "sent while redis is down" {
		t.Fatalf("got %v", m)
	}
	publish(t, rdb, "chat", "hello")
	if m := c.Next(t, wait); string(m.Data) != "hello" {
		t.Fatalf("got %v", m)
	}
	eventually(t, wait, func() bool { return countLines(n.Logs(), `"info"`, "redis subscription restored") == 1 }, "no info on recovery")
	if got := countLines(n.Logs(), "redis unavailable"); got != 1 {
		t.Fatalf("%d warnings for one outage, want 1", got)
	}
}

// Redis killed and restarted mid-run: the node resubscribes every channel by
// itself and traffic flows again.
func TestRedisRestart(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	ns := startNodes(t, 2, exampleCaddyfile(t), rs)
	chat := []*wsClient{dialWS(t, ns[0].WSURL("/ws"), nil), dialWS(t, ns[1].WSURL("/ws"), nil)}
	room := dialWS(t, ns[1].WSURL("/rooms/r"), nil)

	for outage := 1; outage <= 2; outage++ {
		rs.Kill(t)
		for _, n := range ns {
			eventually(t, wait, func() bool { return countLines(n.Logs(), `"warn"`, "redis subscription lost") == outage }, "%s: no warning for outage %d", n.Name, outage)
		}
		dialWS(t, ns[0].WSURL("/rooms/new"), nil) // accepted while Redis is down
		chat[0].SendText(t, fmt.Sprintf("during outage %d", outage))
		rs.Restart(t)
		eventually(t, wait, func() bool {
			return numsub(t, rdb, "chat") == 2 && numsub(t, rdb, "room:r") == 1 && numsub(t, rdb, "room:new") == 1
		}, "channels not resubscribed after restart %d", outage)
		// The frame held during the outage is published once the sender's
		// node listens again; a node that resubscribes later misses it.
		during := fmt.Sprintf("during outage %d", outage)
		if m := chat[0].Next(t, wait); string(m.Data) != during {
			t.Fatalf("got %v, want %q", m, during)
		}
		after := fmt.Sprintf("after outage %d", outage)
		publish(t, rdb, "chat", after)
		for _, c := range chat {
			m := c.Next(t, wait)
			if string(m.Data) == during && c == chat[1] {
				m = c.Next(t, wait)
			}
			if string(m.Data) != after {
				t.Fatalf("got %v, want %q", m, after)
			}
		}
		publish(t, rdb, "room:r", "back")
		if m := room.Next(t, wait); string(m.Data) != "back" {
			t.Fatalf("got %v", m)
		}
		for _, n := range ns {
			eventually(t, wait, func() bool { return countLines(n.Logs(), `"info"`, "redis subscription restored") == outage }, "%s: no info after outage %d", n.Name, outage)
		}
	}
	for _, n := range ns {
		if got := countLines(n.Logs(), "redis subscription lost"); got != 2 {
			t.Fatalf("%s: %d warnings for 2 outages", n.Name, got)
		}
		onlyJSONLogs(t, n)
	}
}

// Frames sent while Redis is down wait in the outbox up to its limits: the
// oldest expire, the ones beyond its size are dropped, the rest are published
// in order once Redis is back.
func TestOutboxLimits(t *testing.T) {
	port := freePort(t)
	n := startNode(t, "node", exampleCaddyfile(t), map[string]string{"REDIS_PORT": strconv.Itoa(port)})
	c := dialWS(t, n.WSURL("/ws"), nil)
	c.SendText(t, "too old")
	time.Sleep(outboxMaxAge + 500*time.Millisecond) // let it age past the limit
	for i := range outboxMaxMessages + 3 {          // each extra frame waits roomWait, then is dropped
		c.SendText(t, strconv.Itoa(i))
	}
	eventually(t, wait, func() bool {
		return scrapeMetrics(t, n)[`caddy_redis_ws_publish_dropped_total{reason="outbox_full"}`] == 3
	}, "the 3 frames beyond the outbox were not dropped")
	if countLines(n.Logs(), `"warn"`, "publish outbox full") != 1 {
		t.Fatal("want one warning when the outbox overflowed")
	}

	startRedisOnPort(t, port)
	for i, m := range c.Collect(t, outboxMaxMessages, wait) {
		if string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("message %d is %v", i, m)
		}
	}
	c.ExpectNothing(t, 500*time.Millisecond)
	if countLines(n.Logs(), "client frames dropped after waiting for redis") != 1 {
		t.Fatal("no warning about the expired frame")
	}
}

// A subscriber connection that stays up but answers nothing is detected by
// the health PING and replaced.
func TestSilentRedis(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := startNodes(t, 1, exampleCaddyfile(t), rs)[0]
	c := dialWS(t, n.WSURL("/ws"), nil)
	eventually(t, wait, func() bool { return numsub(t, rdb, "chat") == 1 }, "chat not subscribed")
	rs.Signal(t, syscall.SIGSTOP)
	stopped := true
	defer func() {
		if stopped {
			rs.Signal(t, syscall.SIGCONT)
		}
	}()
	eventually(t, 3*healthInterval+wait, func() bool {
		return countLines(n.Logs(), `"warn"`, "redis subscription lost", "no reply from redis") == 1
	}, "a silent Redis went unnoticed")
	rs.Signal(t, syscall.SIGCONT)
	stopped = false
	eventually(t, wait, func() bool { return countLines(n.Logs(), `"info"`, "redis subscription restored") == 1 }, "no recovery")
	eventually(t, wait, func() bool { return numsub(t, rdb, "chat") == 1 }, "chat not subscribed once")
	publish(t, rdb, "chat", "after the pause")
	if m := c.Next(t, wait); string(m.Data) != "after the pause" {
		t.Fatalf("got %v", m)
	}
}

// Quiet when things are fine, and never message contents, even at debug.
func TestLogs(t *testing.T) {
	rs := startRedis(t)
	n := startNode(t, "node", siteCaddyfile("\tdebug", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
	}`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
	const ours = `"logger":"http.handlers.redis_ws"`
	c := dialWS(t, n.WSURL("/ws"), nil)
	before := countLines(n.Logs(), ours)
	const secret = "s3cr3t-payload"
	for i := range 50 {
		c.SendText(t, fmt.Sprintf("%s-%d", secret, i))
	}
	c.Collect(t, 50, wait)
	c.Close()
	eventually(t, wait, func() bool { return countLines(n.Logs(), "connection closed") == 1 }, "no debug line when the connection closed")
	if strings.Contains(n.Logs(), secret) {
		t.Fatal("message contents in the logs")
	}
	if got := countLines(n.Logs(), ours) - before; got != 1 {
		t.Fatalf("%d log lines for one connection's 50 messages; want only the one of its end", got)
	}
	for _, line := range strings.Split(n.Logs(), "\n") {
		var fields map[string]any
		if strings.Contains(line, ours) && json.Unmarshal([]byte(line), &fields) != nil {
			t.Fatalf("not a structured log line: %q", line)
		}
	}
}

// The metrics add up after traffic, and survive a reload.
func TestMetrics(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := chatNode(t, rs.Port, "")
	clients := []*wsClient{dialWS(t, n.WSURL("/ws"), nil), dialWS(t, n.WSURL("/ws"), nil), dialWS(t, n.WSURL("/ws"), nil)}
	const perClient, fromRedis = 10, 5
	for _, c := range clients {
		for i := range perClient {
			c.SendText(t, strconv.Itoa(i))
		}
	}
	for i := range fromRedis {
		publish(t, rdb, "chat", fmt.Sprintf("redis %d", i))
	}
	messages := len(clients)*perClient + fromRedis
	for _, c := range clients {
		c.Collect(t, messages, wait)
	}
	const label = `{handler="chat"}`
	want := map[string]float64{
		"caddy_redis_ws_connections" + label:               3,
		"caddy_redis_ws_frames_received_total" + label:     float64(len(clients) * perClient),
		"caddy_redis_ws_deliveries_total" + label:          float64(len(clients) * messages),
		"caddy_redis_ws_slow_clients_closed_total" + label: 0,
	}
	check := func(when string) {
		t.Helper()
		var got map[string]float64
		eventually(t, wait, func() bool {
			got = scrapeMetrics(t, n)
			for k, v := range want {
				if got[k] != v {
					return false
				}
			}
			return got["caddy_redis_ws_fanout_latency_seconds_count"] > 0
		}, "%s: metrics %v, want %v", when, got, want)
	}
	check("after traffic")

	changedElsewhere := siteCaddyfile("", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
	respond /health 204`)
	n.Reload(t, changedElsewhere)
	check("after a reload")
	clients[0].Close()
	want["caddy_redis_ws_connections"+label] = 2
	check("after a client left")
	if strings.Contains(n.Logs(), "registering metrics") {
		t.Fatal("metrics registration failed on reload")
	}
}

// With no matcher, redis_ws serves every path of the site, like the
// original app at ws://localhost:8001.
func TestNoMatcher(t *testing.T) {
	rs := startRedis(t)
	n := startNode(t, "node", siteCaddyfile("", `
	redis_ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
	}`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
	a, b := dialWS(t, n.WSURL("/"), nil), dialWS(t, n.WSURL("/any/path?x=1"), nil)
	b.SendText(t, "everywhere")
	for _, c := range []*wsClient{a, b} {
		if m := c.Next(t, wait); string(m.Data) != "everywhere" {
			t.Fatalf("got %v", m)
		}
	}
}
