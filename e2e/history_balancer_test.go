package e2e

// Drill 4: a node of examples/cluster SIGKILLed behind its load balancer
// with 2,000 envelope clients. They reconnect through the balancer with
// since, to the other node, and get everything published meanwhile exactly
// once.

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

func TestHistoryNodeKilledBehindBalancer(t *testing.T) {
	const clients, missed = 2000, 100
	rs := startRedis(t)
	doomed, lb, port2 := startBalancerFirst(t, rs) // every client goes to node1 first
	connections := func(n *caddyNode) float64 {
		return scrapeMetrics(t, n)[`caddy_redis_ws_connections{handler="chat"}`]
	}
	followers := make([]*follower, clients)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(10 * wait)
	for i := range followers {
		followers[i] = &follower{base: lb.WSURL("/ws"), ch: "chat"}
		wg.Add(1)
		go func() { defer wg.Done(); followers[i].follow(t, missed, deadline) }()
		if (i+1)%200 == 0 { // in steps, as pages open: not one burst of thousands of handshakes
			testkit.Eventually(t, wait, func() bool { return connections(doomed) == float64(i+1) }, "%d clients on node1 through the balancer", i+1)
		}
	}
	t.Logf("%d clients connected through the balancer in %s", clients, time.Since(start).Round(time.Millisecond))
	survivor := startExampleNode(t, "node2", rs, map[string]string{"PORT": fmt.Sprint(port2)})
	testkit.Eventually(t, wait, func() bool { // the balancer's health check found node2
		probe, _, err := tryDialWS(t, lb.WSURL("/ws"), nil)
		if err != nil {
			return false
		}
		defer probe.Close()
		return connections(survivor) > 0
	}, "the balancer does not send clients to node2")

	killed := time.Now()
	doomed.Kill(t)
	sender := dialWS(t, survivor.WSURL("/ws"), nil)
	p := startPaced(sender, "m", missed, 1000)
	p.finish(t)
	wg.Wait()

	var back, done []time.Duration
	for _, f := range followers {
		f.check(t)
		if f.resumed != 1 || f.backAt.IsZero() {
			t.Fatalf("%s: resumed %d times, back at %v; want once", f.base, f.resumed, f.backAt)
		}
		back = append(back, f.backAt.Sub(killed))
		done = append(done, f.doneAt.Sub(killed))
	}
	slices.Sort(back)
	slices.Sort(done)
	t.Logf("node1 SIGKILLed with %d envelope clients, %d messages published while they came back: all resumed through the balancer on node2 (last one caught up %s after the kill, median %s), all had every message exactly once after %s",
		clients, missed, back[len(back)-1].Round(time.Millisecond), back[len(back)/2].Round(time.Millisecond), done[len(done)-1].Round(time.Millisecond))
}
