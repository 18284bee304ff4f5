package e2e

// Drills of history with real processes: the subscriber killed twice under
// recorded traffic, a reload that closes envelope clients with 1012, and a
// Redis restarted without persistence. Every message is counted.

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

// drillNodes starts n nodes whose /ws keeps a history of chat big enough for
// a whole drill; /close is the same channel with gap_policy close.
func drillNodes(t *testing.T, n int, rs *redisServer, directives string) []*caddyNode {
	t.Helper()
	return startNodes(t, n, drillCaddyfile(directives), rs)
}

func drillCaddyfile(directives string) string {
	return siteCaddyfile("", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 10000 1h
		`+directives+`
	}
	redis_ws /close chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 10000 1h
		gap_policy close
	}`)
}

// Drill 1: two nodes, raw and envelope clients on both, 200 recorded
// messages/s; CLIENT KILL TYPE pubsub twice in the middle. The nodes fill
// their gaps: every client gets every message once, in order, and nobody is
// closed, not even with gap_policy close.
func TestHistoryDrillClientKill(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	ns := drillNodes(t, 2, rs, "")
	var raws, envs []*wsClient
	for _, n := range ns {
		raws = append(raws, dialWS(t, n.WSURL("/ws"), nil), dialWS(t, n.WSURL("/close"), nil))
		envs = append(envs, dialEnvelope(t, n.WSURL("/ws")), dialEnvelope(t, n.WSURL("/close")))
	}
	for _, e := range envs {
		expectSubscribed(t, e, "chat")
	}
	testkit.Eventually(t, wait, func() bool { return numsub(t, rdb, "chat") == 2 }, "nodes subscribed")

	const total, rate = 1200, 200
	p := startPaced(raws[0], "m", total, rate)
	epoch := historyEpoch(t, rdb, "chat")
	for _, at := range []int{total / 3, 2 * total / 3} {
		p.waitSent(t, at) // traffic goes on while the nodes resubscribe
		if err := rdb.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
	}
	p.finish(t)
	for _, c := range raws {
		sequenceTexts(t, c, "m", 1, total)
	}
	for _, e := range envs {
		expectOffsets(t, e, "chat", epoch, 1, total, func(o int64) string { return "m" + strconv.FormatInt(o, 10) })
	}
	for _, c := range append(raws, envs...) {
		c.ExpectNothing(t, 0)
		if c.Closed() {
			t.Fatalf("%s: closed (%s)", c.URL, c.closeDesc())
		}
	}
	filled := 0.0
	for _, n := range ns {
		testkit.Eventually(t, wait, func() bool { return scrapeMetrics(t, n)["caddy_redis_ws_redis_reconnects_total"] == 2 }, "%s: two reconnects", n.Name)
		m := scrapeMetrics(t, n)
		if m["caddy_redis_ws_gaps_unfillable_total"] != 0 || m["caddy_redis_ws_redis_reconnects_total"] != 2 {
			t.Fatalf("%s: unfillable gaps %v, reconnects %v; want 0 and 2", n.Name, m["caddy_redis_ws_gaps_unfillable_total"], m["caddy_redis_ws_redis_reconnects_total"])
		}
		filled += m["caddy_redis_ws_gaps_filled_total"]
	}
	t.Logf("two CLIENT KILLs under %d recorded messages/s: %v gaps filled by the two nodes, nothing lost or duplicated", rate, filled)
	if filled == 0 {
		t.Fatal("no gap was filled: nothing was published while the subscribers were away, so the drill proved nothing")
	}
}

// Drill 5: a reload that changes the route closes its clients with 1012;
// envelope clients come back with since and lose nothing.
func TestHistoryDrillReload(t *testing.T) {
	rs := startRedis(t)
	ns := drillNodes(t, 2, rs, "reload_close_delay 0")
	const clients, total, rate = 20, 600, 200
	followers := make([]*follower, clients)
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * wait)
	for i := range followers {
		followers[i] = &follower{base: ns[0].WSURL("/ws"), ch: "chat"}
		wg.Add(1)
		go func() { defer wg.Done(); followers[i].follow(t, total, deadline) }()
	}
	testkit.Eventually(t, wait, func() bool { return scrapeMetrics(t, ns[0])[`caddy_redis_ws_connections{handler="chat"}`] == clients }, "followers connected")
	sender := dialWS(t, ns[1].WSURL("/ws"), nil)
	p := startPaced(sender, "m", total, rate)
	p.waitSent(t, total/2)
	ns[0].Reload(t, drillCaddyfile("reload_close_delay 0\n\t\tmax_connections 1000"))
	p.finish(t)
	wg.Wait()
	for _, f := range followers {
		f.check(t)
		if f.resumed != 1 || f.closes[0] != fanout.CloseServiceReload {
			t.Fatalf("%s: resumed %d times after closes %v; want once after 1012", f.base, f.resumed, f.closes)
		}
	}
}

// Drill 6: Redis restarted without persistence loses every channel's
// history. The epoch changes: gap_policy close closes with 4001, keep keeps
// the clients, who see the new epoch; a resume from the old epoch gets
// recovered:false and never a replay of the new epoch's messages.
func TestHistoryDrillRedisRestart(t *testing.T) {
	rs := startRedis(t)
	n := drillNodes(t, 1, rs, "")[0]
	keep, closing := dialEnvelope(t, n.WSURL("/ws")), dialEnvelope(t, n.WSURL("/close"))
	expectSubscribed(t, keep, "chat")
	expectSubscribed(t, closing, "chat")
	sender := dialWS(t, n.WSURL("/ws"), nil)
	for i := 1; i <= 5; i++ {
		sender.SendText(t, fmt.Sprint(i))
	}
	old := historyEpoch(t, rs.Client(t), "chat")
	expectOffsets(t, keep, "chat", old, 1, 5, nil)
	expectOffsets(t, closing, "chat", old, 1, 5, nil)

	rs.Restart(t)
	if code, _ := closing.WaitClosed(t, wait); code != fanout.CloseGap {
		t.Fatalf("gap_policy close: code %d, want %d", code, fanout.CloseGap)
	}
	testkit.Eventually(t, wait, func() bool { return scrapeMetrics(t, n)["caddy_redis_ws_gaps_unfillable_total"] == 1 }, "the lost history counted as an unfillable gap")
	sender.SendText(t, "after")
	e := nextEnvelope(t, keep)
	if e.Epoch == old || e.offset() != 1 || e.data() != "after" {
		t.Fatalf("after the restart: %v; want offset 1 of a new epoch", e)
	}
	if keep.Closed() || sender.Closed() {
		t.Fatal("gap_policy keep: a client was closed")
	}
	for _, since := range []int64{5, 0} {
		c := dialEnvelope(t, sinceURL(n.WSURL("/ws"), old, since))
		s := expectSubscribed(t, c, "chat")
		if s.Recovered == nil || *s.Recovered || s.Epoch != e.Epoch || s.offset() != 1 {
			t.Fatalf("since %s:%d after the restart: %v; want recovered false at offset 1 of %s", old, since, s, e.Epoch)
		}
		c.ExpectNothing(t, 200*time.Millisecond)
	}
}
