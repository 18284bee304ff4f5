package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/gorilla/websocket"
)

// newChannelsNode is one node whose rooms get a history, at most one new
// room a minute.
func newChannelsNode(t *testing.T, rs *redisServer) *caddyNode {
	t.Helper()
	return startNodes(t, 1, siteCaddyfile("", `
	redis_ws /rooms/* {
		subscribe room:{http.request.uri.path.1}
		history 100 1h {
			new_channels 1
		}
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
	respond /health 200`), rs)[0]
}

// new_channels bounds how many channels clients can make Redis keep: POSTs
// to new rooms beyond it get 429 and leave no key, while rooms that have a
// history (known to the node or not) take nothing of it, and a WebSocket
// client whose frame would make one more is closed with 1013.
func TestNewChannelsBound(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := newChannelsNode(t, rs)
	before := scrapeMetrics(t, n)[`caddy_redis_ws_publish_dropped_total{reason="new_channels"}`]

	// A room recorded by someone else (redis-cli, another node): this node
	// has never seen it.
	if err := bus.PublishScript.Run(context.Background(), rdb, bus.HistoryKeys("room:elsewhere"),
		"room:elsewhere", 100, 3600000, bus.MinMetaTTL.Milliseconds(), "0", "", 0, "", 1, "first").Err(); err != nil {
		t.Fatal(err)
	}

	made := postMessage(t, n.URL("/rooms/first"), "hi", nil)
	if made.Status != http.StatusOK {
		t.Fatalf("POST to the first new room: %d %q", made.Status, made.Body)
	}
	var refused []string
	for i := range 10 {
		room := fmt.Sprintf("new%d", i)
		r := postMessage(t, n.URL("/rooms/"+room), "hi", nil)
		if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "60" || !strings.Contains(r.Body, "new_channels") {
			t.Fatalf("POST to new room %s beyond new_channels: %d %q, Retry-After %q; want 429 with Retry-After 60", room, r.Status, r.Body, r.Header.Get("Retry-After"))
		}
		refused = append(refused, room)
		// Rooms with a history are not new: never refused.
		for _, old := range []string{"first", "elsewhere"} {
			if r := postMessage(t, n.URL("/rooms/"+old), "again", nil); r.Status != http.StatusOK {
				t.Fatalf("POST to room %s, which has a history: %d %q", old, r.Status, r.Body)
			}
		}
	}
	for _, room := range refused {
		if n := rdb.Exists(context.Background(), bus.HistoryKeys("room:"+room)...).Val(); n != 0 {
			t.Fatalf("refused room %s left %d keys", room, n)
		}
	}

	// A WebSocket client's frame to a new room, with the bound used up: the
	// client is closed with 1013 and its frame is not recorded.
	c := dialWS(t, n.WSURL("/rooms/ws"), nil)
	c.SendText(t, "to a new room")
	if code, _ := c.WaitClosed(t, wait); code != websocket.CloseTryAgainLater {
		t.Fatalf("closed with %d (%s), want 1013", code, c.closeDesc())
	}
	if c.Received() != 0 {
		t.Fatal("the refused frame was delivered")
	}
	if n := rdb.Exists(context.Background(), bus.HistoryKeys("room:ws")...).Val(); n != 0 {
		t.Fatalf("the refused frame left %d keys", n)
	}
	if got := scrapeMetrics(t, n)[`caddy_redis_ws_publish_dropped_total{reason="new_channels"}`] - before; got != float64(len(refused)+1) {
		t.Fatalf("publish_dropped_total{reason=new_channels} moved by %v, want %d", got, len(refused)+1)
	}
}
