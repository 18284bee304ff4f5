package fanout

import (
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/prometheus/client_golang/prometheus"
)

// In-process tests of the hub over a bare channel table: its clients have no
// connection, so what is delivered stays in their queues.

// testMetrics are collectors of the tests' own, registered nowhere.
var testMetrics = &ClientMetrics{
	Deliveries:    prometheus.NewCounter(prometheus.CounterOpts{Name: "deliveries"}),
	DeliveryDrops: prometheus.NewCounter(prometheus.CounterOpts{Name: "drops"}),
	SlowClients:   prometheus.NewCounter(prometheus.CounterOpts{Name: "slow"}),
	FanoutLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "latency"}),
}

func singleTable() (*bus.ChannelTable, *bus.SubConn) {
	c := bus.NewSubConn(nil, "", nil)
	return bus.NewChannelTable(bus.NewAvailability("test"), c, nil), c
}

// tableHubs lists the receivers that need a channel.
func tableHubs(t *bus.ChannelTable, name string) []bus.Receiver {
	if st := t.Lookup(name); st != nil {
		return st.HubList()
	}
	return nil
}

func testClient(channels ...string) *Client {
	return NewClient(channels, "", frame.RawFrames, 1<<20, testMetrics)
}

func testHub(maxClients int, closeOnGap bool) (*Hub, *bus.ChannelTable, *int) {
	tb, _ := singleTable()
	released := new(int)
	return NewHub(tb, func() { *released++ }, HubOptions{MaxClients: maxClients, CloseOnGap: closeOnGap}), tb, released
}

func queued(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

func TestHubMaxClients(t *testing.T) {
	h, _, _ := testHub(2, false)
	a, b, c := testClient("x"), testClient("x"), testClient("x")
	if !h.Add(a) || !h.Add(b) {
		t.Fatal("refused below max_connections")
	}
	if h.Add(c) {
		t.Fatal("accepted beyond max_connections")
	}
	h.Remove(a)
	if !h.Add(c) {
		t.Fatal("refused after a client left")
	}
}

// A message reaches the clients of its channel, and only them; the hub
// joins a channel with its first client and leaves it with its last.
func TestHubDeliver(t *testing.T) {
	h, tb, _ := testHub(0, false)
	a, ab, b := testClient("a"), testClient("a", "b"), testClient("b")
	for _, c := range []*Client{a, ab, b} {
		h.Add(c)
	}
	if len(tableHubs(tb, "a")) != 1 || len(tableHubs(tb, "b")) != 1 {
		t.Fatal("the hub did not join its clients' channels once each")
	}
	h.Deliver(&frame.Message{Channel: "a", Payload: "hi"})
	if queued(a) != 1 || queued(ab) != 1 || queued(b) != 0 {
		t.Fatalf("queued %d, %d, %d; want 1, 1, 0", queued(a), queued(ab), queued(b))
	}
	h.Remove(b)
	if len(tableHubs(tb, "a")) != 1 || len(tableHubs(tb, "b")) != 1 {
		t.Fatal("left a channel that a client still has")
	}
	h.Remove(ab)
	if len(tableHubs(tb, "b")) != 0 {
		t.Fatal("kept a channel after its last client left")
	}
}

// A static channel stays joined without clients.
func TestHubStatic(t *testing.T) {
	h, tb, _ := testHub(0, false)
	h.SubscribeStatic("news")
	c := testClient("news")
	h.Add(c)
	h.Remove(c)
	if len(tableHubs(tb, "news")) != 1 {
		t.Fatal("a static channel was left with its last client")
	}
}

func TestHubGapPolicy(t *testing.T) {
	for _, closeOnGap := range []bool{false, true} {
		h, _, _ := testHub(0, closeOnGap)
		a, b := testClient("a"), testClient("b")
		h.Add(a)
		h.Add(b)
		h.Gap("a")
		want := 0
		if closeOnGap {
			want = CloseGap
		}
		if a.CloseCode() != want || b.CloseCode() != 0 {
			t.Fatalf("gap_policy close=%v: close codes %d, %d; want %d, 0", closeOnGap, a.CloseCode(), b.CloseCode(), want)
		}
	}
}

// Retired: clients are closed with the code (or kept), and the hub lets go of
// its channels and of the broker once, when its last client is gone.
func TestHubRetire(t *testing.T) {
	h, tb, released := testHub(0, false)
	h.SubscribeStatic("news")
	a, b := testClient("news"), testClient("room")
	h.Add(a)
	h.Add(b)
	h.Retire(CloseServiceReload, "config reloaded", 0)
	if a.CloseCode() != CloseServiceReload || b.CloseCode() != CloseServiceReload {
		t.Fatalf("close codes %d, %d; want 1012", a.CloseCode(), b.CloseCode())
	}
	h.Remove(a)
	if *released != 0 {
		t.Fatal("released with a client left")
	}
	h.Remove(b)
	if *released != 1 || tb.Lookup("news") != nil || tb.Lookup("room") != nil {
		t.Fatalf("released %d times; channels left: %v, %v", *released, tb.Lookup("news"), tb.Lookup("room"))
	}
	h.WaitEmpty(time.Second)

	h, _, released = testHub(0, false)
	c := testClient("x")
	h.Add(c)
	h.Retire(0, "", -1)
	if c.CloseCode() != 0 || *released != 0 {
		t.Fatal("a kept client was closed, or the hub released with a client left")
	}
	h.Remove(c)
	if *released != 1 {
		t.Fatal("not released after the last kept client left")
	}
}

// A spread of closes runs in a goroutine the hub owns: the exit path's two
// calls do not restart it, a close at once ends it, and so does the last
// client leaving; Wait returns once it is over.
func TestHubRetireSpread(t *testing.T) {
	h, _, _ := testHub(0, false)
	cs := []*Client{testClient("x"), testClient("x"), testClient("x")}
	for _, c := range cs {
		h.Add(c)
	}
	h.Retire(CloseGoingAway, "server exiting", time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	closed := func() int {
		n := 0
		for _, c := range cs {
			if c.CloseCode() == CloseGoingAway {
				n++
			}
		}
		return n
	}
	for closed() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := closed(); n != 1 {
		t.Fatalf("%d clients closed at the start of a spread over an hour; want 1", n)
	}
	h.mu.RLock()
	running := h.stopSpread
	h.mu.RUnlock()
	h.Retire(CloseGoingAway, "server exiting", time.Hour)
	h.mu.RLock()
	again := h.stopSpread
	h.mu.RUnlock()
	if running == nil || again != running {
		t.Fatal("a second retire with the same code restarted the spread")
	}
	h.Retire(CloseGoingAway, "server exiting", 0)
	h.Wait()
	if n := closed(); n != len(cs) {
		t.Fatalf("%d of %d clients closed after a close at once", n, len(cs))
	}
	h.Retire(CloseGoingAway, "server exiting", time.Hour)
	if h.stopSpread != nil {
		t.Fatal("a spread started after a close at once")
	}

	// Everyone leaves during a spread: it ends.
	h, _, _ = testHub(0, false)
	a, b := testClient("x"), testClient("x")
	h.Add(a)
	h.Add(b)
	h.Retire(CloseServiceReload, "config reloaded", time.Hour)
	h.Remove(a)
	h.Remove(b)
	h.Wait()
}
