package redisws

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gapNode serves /keep (gap_policy keep, the default) and /close
// (gap_policy close) on one Redis, so one subscriber connection. The queues
// are large: what Redis sent before a gap arrives in a burst.
func gapNode(t *testing.T, rs *redisServer) *caddyNode {
	t.Helper()
	return startNode(t, "node", siteCaddyfile("", `
	redis_ws /keep chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		send_queue 64MiB
	}
	redis_ws /close chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		send_queue 64MiB
		gap_policy close
	}`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
}

// Ways Redis makes a subscriber deaf: each is detected, the subscription is
// restored, and the gap is handled as gap_policy says and counted.
func TestSubscriberLost(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(t *testing.T, rs *redisServer, n *caddyNode)
	}{
		{"CLIENT KILL TYPE pubsub", func(t *testing.T, rs *redisServer, _ *caddyNode) {
			if err := rs.Client(t).ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err(); err != nil {
				t.Fatal(err)
			}
		}},
		{"output buffer limit", func(t *testing.T, rs *redisServer, n *caddyNode) {
			rdb := rs.Client(t)
			if err := rdb.ConfigSet(context.Background(), "client-output-buffer-limit", "pubsub 64kb 32kb 1").Err(); err != nil {
				t.Fatal(err)
			}
			n.Signal(t, syscall.SIGSTOP) // the node stops reading; Redis's buffer for it grows
			defer n.Signal(t, syscall.SIGCONT)
			// Enough to fill the socket buffers, then Redis's 64 KiB limit.
			payload := strings.Repeat("x", 64<<10)
			for i := 0; len(subscriberIDs(t, rdb)) > 0; i++ {
				if i == 1000 {
					t.Fatal("redis did not drop the subscriber over its output buffer limit")
				}
				publish(t, rdb, "chat", payload)
			}
		}},
		{"CLIENT PAUSE ALL", func(t *testing.T, rs *redisServer, n *caddyNode) {
			// Nothing is answered for longer than the health check allows.
			if err := rs.Client(t).Do(context.Background(), "CLIENT", "PAUSE", strconv.Itoa(int(3*healthInterval/time.Millisecond)), "ALL").Err(); err != nil {
				t.Fatal(err)
			}
			eventually(t, 3*healthInterval+wait, func() bool {
				return countLines(n.Logs(), "redis subscription lost", "no reply from redis") == 1
			}, "a paused Redis went unnoticed")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := startRedis(t)
			rdb := rs.Client(t)
			n := gapNode(t, rs)
			keep, closing := dialWS(t, n.WSURL("/keep"), nil), dialWS(t, n.WSURL("/close"), nil)
			id := subscriberID(t, rdb)

			tc.breakIt(t, rs, n)
			if code, _ := closing.WaitClosed(t, 3*healthInterval+wait); code != closeGap {
				t.Fatalf("gap_policy close: close code %d, want %d", code, closeGap)
			}
			eventually(t, wait, func() bool {
				ids := subscriberIDs(t, rdb)
				return len(ids) == 1 && ids[0] != id && numsub(t, rdb, "chat") == 1
			}, "no new subscriber connection")
			for {
				if keep.Closed() {
					t.Fatal("gap_policy keep: client closed")
				}
				publish(t, rdb, "chat", "after")
				if m := keep.Next(t, wait); string(m.Data) == "after" {
					break // messages published before the gap may come first
				}
			}
			got := scrapeMetrics(t, n)
			if got["caddy_redis_ws_gaps_total"] != 1 || got["caddy_redis_ws_redis_reconnects_total"] != 1 {
				t.Fatalf("gaps %v, reconnects %v; want 1 and 1", got["caddy_redis_ws_gaps_total"], got["caddy_redis_ws_redis_reconnects_total"])
			}
			if lost, restored := countLines(n.Logs(), `"warn"`, "redis subscription lost"), countLines(n.Logs(), `"info"`, "redis subscription restored"); lost != 1 || restored != 1 {
				t.Fatalf("%d warnings and %d infos for one outage; want 1 and 1", lost, restored)
			}
		})
	}
}

// The broker's metrics add up: messages from Redis, frames published,
// channels subscribed.
func TestBrokerMetrics(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := startNodes(t, 1, exampleCaddyfile(t), rs)[0]
	a := dialWS(t, n.WSURL("/rooms/a"), nil)
	b := dialWS(t, n.WSURL("/rooms/b"), nil)
	for i := range 7 {
		a.SendText(t, fmt.Sprint(i))
	}
	publish(t, rdb, "room:b", "x")
	a.Collect(t, 7, wait)
	b.Collect(t, 1, wait)
	want := map[string]float64{
		"caddy_redis_ws_messages_published_total":      7,
		"caddy_redis_ws_redis_messages_received_total": 8,
		"caddy_redis_ws_channels":                      4, // chat and news (static), room:a, room:b
	}
	var got map[string]float64
	eventually(t, wait, func() bool {
		got = scrapeMetrics(t, n)
		for k, v := range want {
			if got[k] != v {
				return false
			}
		}
		return true
	}, "metrics %v, want %v", got, want)
	a.Close()
	eventually(t, wait, func() bool { return scrapeMetrics(t, n)["caddy_redis_ws_channels"] == 3 }, "room:a still counted")
}
