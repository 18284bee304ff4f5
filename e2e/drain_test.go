package e2e

// A node stopped behind the load balancer: its clients get 1001, all at once
// without stop_close_delay, spread over it with; every one of them comes back
// through the balancer to the other nodes and, with history, loses nothing.

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"

	"github.com/gorilla/websocket"
)

func TestStopDrainBehindBalancer(t *testing.T) {
	const drain = 4 * time.Second
	for _, tc := range []struct {
		name  string
		drain time.Duration
	}{{"at once", 0}, {"drained", drain}} {
		t.Run(tc.name, func(t *testing.T) { stopBehindBalancer(t, tc.drain) })
	}
}

// stopBehindBalancer runs 3 nodes behind a balancer with 300 followers,
// SIGTERMs one node while a survivor's client publishes, and checks what its
// followers saw.
func stopBehindBalancer(t *testing.T, drain time.Duration) {
	const clients, during, after = 300, 200, 10
	rs := startRedis(t)
	directive := ""
	if drain > 0 {
		directive = "stop_close_delay " + drain.String()
	}
	ns := startNodes(t, 3, siteCaddyfile("", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 1000 1h
		`+directive+`
	}
	respond /health 200`), rs)
	lb := startNode(t, "lb", balancerOf(ns), nil)
	connections := func(n *caddyNode) float64 {
		return scrapeMetrics(t, n)[`caddy_redis_ws_connections{handler="chat"}`]
	}
	total := func() float64 { return connections(ns[0]) + connections(ns[1]) + connections(ns[2]) }

	followers := make([]*follower, clients)
	var wg sync.WaitGroup
	deadline := time.Now().Add(10 * wait)
	for i := range followers {
		followers[i] = &follower{base: lb.WSURL("/ws"), ch: "chat"}
		wg.Add(1)
		go func() { defer wg.Done(); followers[i].follow(t, during+after, deadline) }()
		if (i+1)%50 == 0 { // in steps, as pages open
			testkit.Eventually(t, wait, func() bool { return total() == float64(i+1) }, "%d clients connected through the balancer", i+1)
		}
	}
	doomed, survivor := ns[0], ns[1]
	onDoomed := int(connections(doomed))
	if onDoomed == 0 {
		t.Fatal("the balancer sent no client to node1")
	}

	// Publish through a survivor while node1 stops, and after it is gone.
	sender := dialWS(t, survivor.WSURL("/ws"), nil)
	p := startPaced(sender, "m", during, 50)
	stopped := time.Now()
	doomed.Signal(t, syscall.SIGTERM)
	select {
	case <-doomed.Exited():
	case <-time.After(drain + wait):
		t.Fatalf("node1 still running %s after SIGTERM with stop_close_delay %s", drain+wait, drain)
	}
	p.finish(t)
	for i := range after {
		sender.SendText(t, "a"+strconv.Itoa(i))
	}
	wg.Wait()

	var closed, resumed []time.Time
	for _, f := range followers {
		f.check(t)
		switch {
		case len(f.closes) == 0:
		case len(f.closes) == 1 && f.closes[0] == websocket.CloseGoingAway && len(f.resumes) == 1:
			closed = append(closed, f.closed[0])
			resumed = append(resumed, f.resumes[0])
		default:
			t.Fatalf("%s: closes %v, resumed %d times; want one 1001 and one resume, or none", f.base, f.closes, len(f.resumes))
		}
	}
	if len(closed) != onDoomed {
		t.Fatalf("%d clients closed with 1001 and resumed; node1 had %d", len(closed), onDoomed)
	}
	early := sortCountEarly(closed, drain/10)
	slices.SortFunc(resumed, time.Time.Compare)
	t.Logf("stop_close_delay %s: %d clients of node1 closed with 1001 over %s (%d in the first %s), resumed on the other nodes over %s; reconnects per second seen by them: %s",
		drain, len(closed), closed[len(closed)-1].Sub(closed[0]).Round(time.Millisecond), early, (drain / 10).String(),
		resumed[len(resumed)-1].Sub(resumed[0]).Round(time.Millisecond), perSecond(resumed, stopped))
	if drain > 0 && early > len(closed)/2 {
		t.Fatalf("%d of %d closes came within the first tenth of the drain (%s); want them spread over %s", early, len(closed), drain/10, drain)
	}
}

// sortCountEarly sorts times and counts those within d of the first.
func sortCountEarly(times []time.Time, d time.Duration) int {
	slices.SortFunc(times, time.Time.Compare)
	early := 0
	for _, at := range times {
		if at.Sub(times[0]) <= d {
			early++
		}
	}
	return early
}

// balancerOf is examples/cluster/lb.caddyfile in front of all the nodes.
func balancerOf(ns []*caddyNode) string {
	var addrs []string
	for _, n := range ns {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", n.Port))
	}
	return siteCaddyfile("", `
	reverse_proxy `+strings.Join(addrs, " ")+` {
		lb_policy least_conn
		lb_try_duration 5s
		fail_duration 10s
		health_uri /health
		health_interval 2s
	}`)
}

// perSecond counts the times in each second after start: "3s:12 4s:40 …".
func perSecond(times []time.Time, start time.Time) string {
	counts := map[int]int{}
	last := 0
	for _, at := range times {
		s := int(at.Sub(start) / time.Second)
		counts[s]++
		last = max(last, s)
	}
	var b strings.Builder
	for s := 0; s <= last; s++ {
		if counts[s] > 0 {
			fmt.Fprintf(&b, "%ds:%d ", s, counts[s])
		}
	}
	return strings.TrimSpace(b.String())
}

// Event streams end spread over stop_close_delay as WebSockets do, the
// routes of a node drain together, and grace_period bounds the drain
// (caddy stop of a node whose delay is an hour returns within seconds).
func TestStopDrainStreamsAndGrace(t *testing.T) {
	const drain = 2 * time.Second
	rs := startRedis(t)
	n := startNode(t, "node", siteCaddyfile("", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		stop_close_delay `+drain.String()+`
	}
	redis_ws /other other {
		redis redis://127.0.0.1:{$REDIS_PORT}
		stop_close_delay `+drain.String()+`
	}`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
	const each = 10
	var mu sync.Mutex
	var ended []time.Time
	var wg sync.WaitGroup
	record := func(wait func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait()
			mu.Lock()
			ended = append(ended, time.Now())
			mu.Unlock()
		}()
	}
	var ws []*wsClient
	for range each {
		for _, path := range []string{"/ws", "/other"} {
			c := dialWS(t, n.WSURL(path), nil)
			ws = append(ws, c)
			record(func() { <-c.done })
			s := dialSSE(t, n.URL(path), nil)
			record(func() { <-s.done })
		}
	}
	n.Signal(t, syscall.SIGTERM)
	select {
	case <-n.Exited():
	case <-time.After(drain + wait):
		t.Fatalf("node still running %s after SIGTERM", drain+wait)
	}
	wg.Wait()
	for _, c := range ws {
		if code, _ := c.WaitClosed(t, wait); code != websocket.CloseGoingAway {
			t.Fatalf("%s: close code %d, want 1001", c.URL, code)
		}
	}
	early := sortCountEarly(ended, drain/10)
	t.Logf("%d WebSockets and event streams of two routes ended over %s, %d in the first %s",
		len(ended), ended[len(ended)-1].Sub(ended[0]).Round(time.Millisecond), early, drain/10)
	if early > len(ended)/2 {
		t.Fatalf("%d of %d connections ended within the first tenth of the drain; want them spread over %s", early, len(ended), drain)
	}

	// grace_period cuts an hour's drain: caddy stop returns within seconds.
	n = startNode(t, "graced", siteCaddyfile("\tgrace_period 1s", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		stop_close_delay 1h
	}`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
	ws = ws[:0]
	for range each {
		ws = append(ws, dialWS(t, n.WSURL("/ws"), nil))
	}
	n.Stop(t) // fails unless the process exits within 20 s
	for _, c := range ws {
		if code, _ := c.WaitClosed(t, wait); code != websocket.CloseGoingAway {
			t.Fatalf("grace_period 1s: close code %d, want 1001", code)
		}
	}
}
