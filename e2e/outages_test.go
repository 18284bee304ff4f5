package e2e

// Outages: Redis down at start, killed and restarted, silent, or dropping
// the subscriber (gap_policy); the outbox that holds client frames
// meanwhile; a Caddy node killed.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

// Redis down at start: the node serves; it connects by itself once Redis is
// there, with one warning and one info.
func TestRedisDownAtStart(t *testing.T) {
	port := freePort(t)
	n := startNode(t, "node", exampleCaddyfile(t), map[string]string{"REDIS_PORT": strconv.Itoa(port)})
	c := dialWS(t, n.WSURL("/ws"), nil)
	c.SendText(t, "sent while redis is down")
	testkit.Eventually(t, wait, func() bool { return countLines(n.Logs(), `"warn"`, "redis unavailable") == 1 }, "no warning about redis")

	rs := startRedisOnPort(t, port)
	rdb := rs.Client(t)
	testkit.Eventually(t, wait, func() bool { return numsub(t, rdb, "chat") == 1 }, "node did not subscribe once redis came up")
	// The frame held in the outbox is published on recovery.
	if m := c.Next(t, wait); string(m.Data) != "sent while redis is down" {
		t.Fatalf("got %v", m)
	}
	publish(t, rdb, "chat", "hello")
	if m := c.Next(t, wait); string(m.Data) != "hello" {
		t.Fatalf("got %v", m)
	}
	testkit.Eventually(t, wait, func() bool { return countLines(n.Logs(), `"info"`, "redis subscription restored") == 1 }, "no info on recovery")
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
			testkit.Eventually(t, wait, func() bool { return countLines(n.Logs(), `"warn"`, "redis subscription lost") == outage }, "%s: no warning for outage %d", n.Name, outage)
		}
		dialWS(t, ns[0].WSURL("/rooms/new"), nil) // accepted while Redis is down
		chat[0].SendText(t, fmt.Sprintf("during outage %d", outage))
		rs.Restart(t)
		testkit.Eventually(t, wait, func() bool {
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
			testkit.Eventually(t, wait, func() bool { return countLines(n.Logs(), `"info"`, "redis subscription restored") == outage }, "%s: no info after outage %d", n.Name, outage)
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
	time.Sleep(bus.OutboxMaxAge + 500*time.Millisecond) // let it age past the limit
	for i := range bus.OutboxMaxMessages + 3 {          // each extra frame waits roomWait, then is dropped
		c.SendText(t, strconv.Itoa(i))
	}
	testkit.Eventually(t, wait, func() bool {
		return scrapeMetrics(t, n)[`caddy_redis_ws_publish_dropped_total{reason="outbox_full"}`] == 3
	}, "the 3 frames beyond the outbox were not dropped")
	if countLines(n.Logs(), `"warn"`, "publish outbox full") != 1 {
		t.Fatal("want one warning when the outbox overflowed")
	}

	startRedisOnPort(t, port)
	for i, m := range c.Collect(t, bus.OutboxMaxMessages, wait) {
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
	testkit.Eventually(t, wait, func() bool { return numsub(t, rdb, "chat") == 1 }, "chat not subscribed")
	rs.Signal(t, syscall.SIGSTOP)
	stopped := true
	defer func() {
		if stopped {
			rs.Signal(t, syscall.SIGCONT)
		}
	}()
	testkit.Eventually(t, 3*bus.HealthInterval+wait, func() bool {
		return countLines(n.Logs(), `"warn"`, "redis subscription lost", "no reply from redis") == 1
	}, "a silent Redis went unnoticed")
	rs.Signal(t, syscall.SIGCONT)
	stopped = false
	testkit.Eventually(t, wait, func() bool { return countLines(n.Logs(), `"info"`, "redis subscription restored") == 1 }, "no recovery")
	testkit.Eventually(t, wait, func() bool { return numsub(t, rdb, "chat") == 1 }, "chat not subscribed once")
	publish(t, rdb, "chat", "after the pause")
	if m := c.Next(t, wait); string(m.Data) != "after the pause" {
		t.Fatalf("got %v", m)
	}
}

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
			if err := rs.Client(t).Do(context.Background(), "CLIENT", "PAUSE", strconv.Itoa(int(3*bus.HealthInterval/time.Millisecond)), "ALL").Err(); err != nil {
				t.Fatal(err)
			}
			testkit.Eventually(t, 3*bus.HealthInterval+wait, func() bool {
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
			if code, _ := closing.WaitClosed(t, 3*bus.HealthInterval+wait); code != fanout.CloseGap {
				t.Fatalf("gap_policy close: close code %d, want %d", code, fanout.CloseGap)
			}
			testkit.Eventually(t, wait, func() bool {
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

// A node killed with SIGKILL: its clients see the drop, the other node's
// clients go on.
func TestNodeKilled(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	ns := startNodes(t, 2, exampleCaddyfile(t), rs)
	doomed, survivor := dialWS(t, ns[0].WSURL("/ws"), nil), dialWS(t, ns[1].WSURL("/ws"), nil)
	ns[0].Kill(t)
	if code, _ := doomed.WaitClosed(t, wait); code != -1 {
		t.Fatalf("client of the killed node: close code %d, want an abnormal end", code)
	}
	publish(t, rdb, "chat", "after the kill")
	if m := survivor.Next(t, wait); string(m.Data) != "after the kill" {
		t.Fatalf("got %v", m)
	}
	testkit.Eventually(t, wait, func() bool { return numsub(t, rdb, "chat") == 1 }, "the dead node's subscription is still counted")
}

// Redis restarted while the config reloads: the node ends up subscribed and
// serving, through the one subscriber.
func TestRedisRestartDuringReload(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := startNodes(t, 1, exampleCaddyfile(t), rs)[0]
	c := dialWS(t, n.WSURL("/ws"), nil)
	rs.Kill(t)
	n.Reload(t, withExtraRoute(t, "/other"))
	rs.Restart(t)
	testkit.Eventually(t, wait, func() bool { return numsub(t, rdb, "chat") == 1 && len(subscriberIDs(t, rdb)) == 1 }, "not subscribed once after restart and reload")
	publish(t, rdb, "chat", "after both")
	if m := c.Next(t, wait); string(m.Data) != "after both" {
		t.Fatalf("got %v", m)
	}
	fresh := dialWS(t, n.WSURL("/ws"), nil)
	fresh.SendText(t, "new client")
	for _, cl := range []*wsClient{c, fresh} {
		if m := cl.Next(t, wait); string(m.Data) != "new client" {
			t.Fatalf("got %v", m)
		}
	}
}
