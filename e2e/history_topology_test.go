package e2e

// History across Redis failovers and slot moves, under recorded traffic:
// Sentinel with its master SIGKILLed, and a Cluster with sharded Pub/Sub
// whose master of the channel is killed and whose slot then moves. The
// connected clients lose nothing that the new owner has in its stream.

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/redis/go-redis/v9"
)

// recordedClients are the raw and envelope clients of a drill on chat.
type recordedClients struct {
	raw, env []*wsClient
}

func dialRecorded(t *testing.T, ns []*caddyNode) *recordedClients {
	t.Helper()
	rc := new(recordedClients)
	for _, n := range ns {
		rc.raw = append(rc.raw, dialWS(t, n.WSURL("/ws"), nil))
		e := dialEnvelope(t, n.WSURL("/ws"))
		expectSubscribed(t, e, "chat")
		rc.env = append(rc.env, e)
	}
	return rc
}

// check reads every client up to "m<total>" and checks that each got the
// sender's messages once and in order, and every one of the stream, which
// holds what the Redis that serves the channel now has. It returns how many
// messages the clients got beyond the stream: acknowledged by a master that
// died before its replica had them.
func (rc *recordedClients) check(t *testing.T, stream []string, total int) int {
	t.Helper()
	last := "m" + strconv.Itoa(total)
	beyond := 0
	for _, c := range append(rc.raw, rc.env...) {
		envelope := c.Conn.Subprotocol() != ""
		var got []string
		var offset int64
		for len(got) == 0 || got[len(got)-1] != last {
			m := c.Next(t, 2*wait)
			text := string(m.Data)
			if envelope {
				e := decodeEnvelope(t, m)
				if e.offset() <= offset && offset != 0 {
					t.Logf("%s: offset %d after %d (%v): the history went back", c.URL, e.offset(), offset, e)
				}
				offset, text = e.offset(), e.data()
			}
			if n := len(got); n > 0 {
				prev, _ := strconv.Atoi(strings.TrimPrefix(got[n-1], "m"))
				cur, _ := strconv.Atoi(strings.TrimPrefix(text, "m"))
				if cur <= prev {
					t.Fatalf("%s: %q after %q: out of order or twice", c.URL, text, got[n-1])
				}
			}
			got = append(got, text)
		}
		have := make(map[string]bool, len(got))
		for _, g := range got {
			have[g] = true
		}
		for _, s := range stream {
			if !have[s] {
				t.Fatalf("%s: %q is in the stream but never arrived (got %d messages)", c.URL, s, len(got))
			}
		}
		beyond = max(beyond, len(got)-len(stream))
		if c.Closed() {
			t.Fatalf("%s: closed (%s)", c.URL, c.closeDesc())
		}
	}
	return beyond
}

// streamOf reads the payloads of chat's stream.
func streamOf(t *testing.T, rdb redis.Cmdable) []string {
	t.Helper()
	entries, err := rdb.XRange(context.Background(), bus.HistoryKeys("chat")[1], "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE: %v", err)
	}
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i], _ = e.Values["d"].(string)
	}
	return out
}

// Drill 2: Sentinel, the master SIGKILLed under 200 recorded messages/s.
func TestHistorySentinel(t *testing.T) {
	s := startSentinels(t)
	config := siteCaddyfile("", `
	redis_ws /ws chat {
		redis {
			addrs {$SENTINELS}
			master_name mymaster
		}
		history 10000 1h
		gap_policy close
	}`)
	env := map[string]string{"SENTINELS": s.Addrs()}
	ns := []*caddyNode{startNode(t, "node1", config, env), startNode(t, "node2", config, env)}
	rc := dialRecorded(t, ns)
	const total, rate = 2000, 200
	p := startPaced(rc.raw[0], "m", total, rate)
	p.waitSent(t, total/4)
	s.Master.Kill(t)
	testkit.Eventually(t, 60*time.Second, func() bool { return s.MasterAddr(t) == s.Replica.Addr }, "sentinels did not promote the replica")
	p.finish(t)
	stream := streamOf(t, s.Replica.Client(t))
	beyond := rc.check(t, stream, total)
	t.Logf("sentinel failover under %d recorded msg/s: %d of %d messages in the new master's stream, every one delivered once and in order to all %d clients; %d delivered beyond it (lost by asynchronous replication)",
		rate, len(stream), total, len(rc.raw)+len(rc.env), beyond)
}

// Drill 3: Cluster with sharded Pub/Sub: the master of the channel killed,
// then the channel's slot migrated to another master, under traffic.
func TestHistoryCluster(t *testing.T) {
	cl := startCluster(t, 3, 1)
	config := siteCaddyfile("", `
	redis_ws /ws chat {
		redis {
			addrs {$SEEDS}
			cluster
		}
		history 10000 1h
		gap_policy close
	}`)
	env := map[string]string{"SEEDS": cl.Seeds()}
	ns := []*caddyNode{startNode(t, "node1", config, env), startNode(t, "node2", config, env)}
	rc := dialRecorded(t, ns)
	var subs int64
	testkit.Eventually(t, wait, func() bool { subs = cl.ShardNumSub(t, "chat"); return subs == 2 },
		"%v sharded subscribers of chat in the cluster, want one a node", atFailure(func() any { return subs }))
	const total, rate = 2400, 200
	p := startPaced(rc.raw[0], "m", total, rate)

	p.waitSent(t, total/4)
	cl.Owner(t, "chat").Kill(t)
	cl.WaitOK(t)
	p.waitSent(t, total/2)
	owner := cl.Owner(t, "chat")
	var to *redisServer
	for _, m := range cl.Masters(t) {
		if m != owner {
			to = m
		}
	}
	cl.MigrateSlot(t, bus.KeySlot("chat"), owner, to)
	testkit.Eventually(t, wait, func() bool { return cl.Owner(t, "chat") == to }, "the slot did not move")
	p.finish(t)

	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Fields(cl.Seeds())})
	defer rdb.Close()
	stream := streamOf(t, rdb)
	beyond := rc.check(t, stream, total)
	for _, n := range ns {
		m := scrapeMetrics(t, n)
		t.Logf("%s: gaps filled %v, unfillable %v", n.Name, m["caddy_redis_ws_gaps_filled_total"], m["caddy_redis_ws_gaps_unfillable_total"])
	}
	t.Logf("cluster: master killed, then slot %d migrated under %d recorded msg/s: %d of %d in the stream, every one delivered once and in order to all %d clients; %d beyond it",
		bus.KeySlot("chat"), rate, len(stream), total, len(rc.raw)+len(rc.env), beyond)
}
