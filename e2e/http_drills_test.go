package e2e

// Event streams with history lose nothing: across a reload that leaves
// their route as it was (they stay open), then one that changes it (they
// end, with the WebSockets kept by the first, and an EventSource comes back
// with Last-Event-ID), and when their node is SIGKILLed behind
// the load balancer. Caddy's exit ends them at once.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

func TestEventStreamReload(t *testing.T) {
	rs := startRedis(t)
	ns := drillNodes(t, 2, rs, "reload_close_delay 0")
	const clients, total, rate = 20, 600, 200
	sources := make([]*eventSource, clients)
	for i := range sources {
		sources[i] = startEventSource(t, ns[0].URL("/ws"))
	}
	testkit.Eventually(t, wait, func() bool {
		return scrapeMetrics(t, ns[0])[`caddy_redis_ws_event_streams{handler="chat"}`] == clients
	}, "streams connected")
	socket := dialWS(t, ns[0].WSURL("/ws"), nil)
	sender := dialWS(t, ns[1].WSURL("/ws"), nil)
	p := startPaced(sender, "m", total, rate)
	p.waitSent(t, total/3)
	// Another route changes: the streams of the unchanged one stay open.
	ns[0].Reload(t, strings.Replace(drillCaddyfile("reload_close_delay 0"), "redis_ws /close", "respond /other 200\n\tredis_ws /close", 1))
	p.waitSent(t, 2*total/3)
	for _, es := range sources {
		if n := es.Streams(); n != 1 {
			t.Fatalf("%d streams after a reload that left the route as it was, want 1", n)
		}
	}
	if socket.Closed() {
		t.Fatal("a WebSocket was closed by a reload that left its route as it was")
	}
	// The route changes: its streams end, and come back with Last-Event-ID.
	ns[0].Reload(t, drillCaddyfile("reload_close_delay 0\n\t\tmax_connections 1000"))
	// What stayed open across the first reload belongs to the route too.
	if code, _ := socket.WaitClosed(t, wait); code != fanout.CloseServiceReload {
		t.Fatalf("the WebSocket kept across the first reload closed with %d, want %d", code, fanout.CloseServiceReload)
	}
	p.finish(t)
	for _, es := range sources {
		es.WaitData(t, numbered("m", total))
		if n := es.Streams(); n != 2 {
			t.Fatalf("%d streams, want 2: one before the reload that changed the route, one after", n)
		}
	}
}

func TestEventStreamNodeKilledBehindBalancer(t *testing.T) {
	const clients, missed = 50, 100
	rs := startRedis(t)
	doomed, lb, port2 := startBalancerFirst(t, rs) // every client goes to node1 first
	sources := make([]*eventSource, clients)
	for i := range sources {
		sources[i] = startEventSource(t, lb.URL("/ws"))
	}
	testkit.Eventually(t, wait, func() bool {
		return scrapeMetrics(t, doomed)[`caddy_redis_ws_event_streams{handler="chat"}`] == clients
	}, "streams on node1 through the balancer")
	for _, es := range sources {
		testkit.Eventually(t, wait, func() bool { return es.LastID() != "" }, "a stream has no id to resume from")
	}
	survivor := startExampleNode(t, "node2", rs, map[string]string{"PORT": fmt.Sprint(port2)})
	testkit.Eventually(t, wait, func() bool { // the balancer's health check found node2
		r := postMessage(t, lb.URL("/ws"), "probe", nil)
		return r.Status == 200 && scrapeMetrics(t, survivor)[`caddy_redis_ws_http_publishes_total{code="200",handler="chat"}`] > 0
	}, "the balancer does not send requests to node2")
	probes := int(scrapeMetrics(t, doomed)[`caddy_redis_ws_http_publishes_total{code="200",handler="chat"}`] +
		scrapeMetrics(t, survivor)[`caddy_redis_ws_http_publishes_total{code="200",handler="chat"}`])

	killed := time.Now()
	doomed.Kill(t)
	for i := 1; i <= missed; i++ {
		mustPost(t, survivor.URL("/ws"), fmt.Sprintf("m%d", i))
	}
	want := append(repeated("probe", probes), numbered("m", missed)...)
	for _, es := range sources {
		es.WaitData(t, want)
		if n := es.Streams(); n != 2 {
			t.Fatalf("%d streams, want 2", n)
		}
	}
	t.Logf("%d streams resumed through the balancer with every one of %d messages published meanwhile, %s after the kill",
		clients, missed, time.Since(killed).Round(time.Millisecond))
}

func repeated(s string, n int) []string {
	r := make([]string, n)
	for i := range r {
		r[i] = s
	}
	return r
}

// At exit Caddy waits for every response to finish; the handler ends its
// streams, so Caddy exits at once.
func TestEventStreamEndsAtExit(t *testing.T) {
	rs := startRedis(t)
	n := drillNodes(t, 1, rs, "")[0]
	s := dialSSE(t, n.URL("/ws"), nil)
	testkit.Eventually(t, wait, func() bool { return s.LastID() != "" }, "no id")
	n.Stop(t) // fails unless the process exits
	s.WaitEnded(t, wait)
}
