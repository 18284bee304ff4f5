package e2e

// Reloads and stops: a reload keeps the shared Redis subscriber and the
// clients of an unchanged handler, closes those of a changed or removed
// one with 1012; caddy stop and SIGTERM close every client with 1001.

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/gorilla/websocket"
)

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
	testkit.Eventually(t, wait, func() bool { return len(subscriberIDs(t, rdb)) == 0 }, "subscriber still connected after the last handler left")
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
