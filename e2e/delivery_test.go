package e2e

// Delivery: what a client sends or Redis publishes reaches every client of
// the channel on every node (redis-cli included, binary kept binary), per
// channel and per room; receive-only channels; the JSON config and a
// redis_ws with no matcher; the module in caddy list-modules.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
)

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

	next := redisCLISubscribe(t, rs.Port, "chat")
	rdb := rs.Client(t)
	testkit.Eventually(t, wait, func() bool { return numsub(t, rdb, "chat") == 3 }, "redis-cli subscribe not counted")

	sent := []string{"hello from a", "ünïcödé ✓", `quotes "and" \backslash`}
	for _, s := range sent { // one sender: its order is kept
		clients[1].SendText(t, s)
	}
	got := next(len(sent))
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
	testkit.Eventually(t, wait, func() bool { return numsub(t, rdb, "room:a") == 1 }, "node1 kept room:a after its last client left")
	a2.Close()
	b2.Close()
	testkit.Eventually(t, wait, func() bool {
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
