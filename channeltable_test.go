package redisws

import (
	"fmt"
	"slices"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
)

// The channel table is pure state: these tests drive it as the subscriber
// connections and the router do, without Redis.

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// A channel is subscribed once for all its hubs, ready once Redis confirms
// it, unsubscribed with its last hub and then forgotten.
func TestChannelTableLifecycle(t *testing.T) {
	tb, c := testkit.SingleTable()
	h1, h2 := new(fanout.Hub), new(fanout.Hub)
	gauge := gaugeValue(t, bus.Metrics.Channels)
	tb.Join("a", h1, false)
	tb.Join("a", h2, false)
	ready := tb.ReadyChan("a")
	testkit.WantChanges(t, tb, c, []string{"a"}, nil)
	testkit.WantChanges(t, tb, c, nil, nil)
	if closed(ready) {
		t.Fatal("ready before Redis confirmed the subscription")
	}
	tb.Confirmed(c, "a")
	if !closed(ready) {
		t.Fatal("not ready after the confirmation")
	}
	if got := gaugeValue(t, bus.Metrics.Channels) - gauge; got != 1 {
		t.Fatalf("channels gauge moved by %v, want 1", got)
	}
	if hubs := tableHubs(tb, "a"); len(hubs) != 2 {
		t.Fatalf("%d hubs, want 2", len(hubs))
	}
	tb.Leave("a", h1)
	testkit.WantChanges(t, tb, c, nil, nil)
	tb.Leave("a", h2)
	testkit.WantChanges(t, tb, c, nil, []string{"a"})
	if tb.Lookup("a") != nil || len(c.Routed) != 0 || len(c.Subs) != 0 {
		t.Fatalf("channel kept after its last hub left: %+v", tb.Lookup("a"))
	}
	if got := gaugeValue(t, bus.Metrics.Channels) - gauge; got != 0 {
		t.Fatalf("channels gauge moved by %v, want 0", got)
	}
}

// Leaving and joining again before the first SUBSCRIBE is confirmed: the
// first reply must not count for the second SUBSCRIBE.
func TestChannelTableRejoinWhilePending(t *testing.T) {
	tb, c := testkit.SingleTable()
	h := new(fanout.Hub)
	tb.Join("a", h, false)
	testkit.WantChanges(t, tb, c, []string{"a"}, nil)
	tb.Leave("a", h)
	testkit.WantChanges(t, tb, c, nil, []string{"a"})
	tb.Join("a", h, false)
	testkit.WantChanges(t, tb, c, []string{"a"}, nil)
	ready := tb.ReadyChan("a")
	tb.Confirmed(c, "a") // the reply to the first SUBSCRIBE
	if closed(ready) {
		t.Fatal("ready on the reply to an earlier SUBSCRIBE")
	}
	tb.Confirmed(c, "a")
	if !closed(ready) {
		t.Fatal("not ready after the reply to the last SUBSCRIBE")
	}
}

// With many channels subscribed, a change touches only the channel that
// changed.
func TestChannelTableChangesOnlyWhatChanged(t *testing.T) {
	tb, c := testkit.SingleTable()
	h := new(fanout.Hub)
	var all []string
	for i := range 1000 {
		all = append(all, fmt.Sprintf("ch%04d", i))
		tb.Join(all[i], h, false)
	}
	slices.Sort(all)
	testkit.WantChanges(t, tb, c, all, nil)
	for _, ch := range all {
		tb.Confirmed(c, ch)
	}
	tb.Join("new", h, false)
	testkit.WantChanges(t, tb, c, []string{"new"}, nil)
	tb.Leave("ch0005", h)
	testkit.WantChanges(t, tb, c, nil, []string{"ch0005"})
	if len(c.Dirty) != 0 {
		t.Fatalf("%d channels still marked", len(c.Dirty))
	}
}

// A lost connection releases every waiter, forgets the channels nobody
// needs, and its next connection subscribes every channel that is needed.
func TestChannelTableDisconnected(t *testing.T) {
	tb, c := testkit.SingleTable()
	h := new(fanout.Hub)
	tb.Join("a", h, false)
	tb.Join("b", h, false)
	testkit.WantChanges(t, tb, c, []string{"a", "b"}, nil)
	tb.Connected(c)
	if !tb.Avail.IsUp() {
		t.Fatal("not up after the connection was confirmed")
	}
	ready := tb.ReadyChan("a")
	tb.Leave("b", h)
	tb.Disconnected(c)
	if !closed(ready) {
		t.Fatal("waiters kept while Redis is gone")
	}
	if tb.Avail.IsUp() {
		t.Fatal("up after the connection was lost")
	}
	if tb.Lookup("b") != nil {
		t.Fatal("a channel nobody needs survived the disconnection")
	}
	testkit.WantChanges(t, tb, c, []string{"a"}, nil)
	if closed(tb.ReadyChan("a")) {
		t.Fatal("ready before the new SUBSCRIBE is confirmed")
	}
}

// An error reply (NOPERM) releases the waiters: no confirmation will come.
func TestChannelTableRefused(t *testing.T) {
	tb, c := testkit.SingleTable()
	tb.Join("secret", new(fanout.Hub), false)
	testkit.WantChanges(t, tb, c, []string{"secret"}, nil)
	tb.Refused(c)
	if !closed(tb.ReadyChan("secret")) {
		t.Fatal("waiters kept after Redis refused the subscription")
	}
}

// Sharded: channels wait for the router, are subscribed on their owner's
// connection, and go back to the router when Redis drops them there.
func TestChannelTableSharded(t *testing.T) {
	route := make(chan struct{}, 1)
	tb := bus.NewChannelTable(bus.NewAvailability("test"), nil, route)
	h := new(fanout.Hub)
	tb.Join("a", h, false)
	if got := tb.UnroutedNames(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("unrouted %v, want [a]", got)
	}
	if !closed(route) || tb.Avail.IsUp() {
		t.Fatal("the router was not woken, or up with a channel unrouted")
	}
	nodeClient := func(addr string) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: addr}) // never dials here
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	conns := map[string]*bus.SubConn{}
	start := func(node string, _ *redis.Client) *bus.SubConn {
		conns[node] = bus.NewSubConn(nil, node, nil)
		return conns[node]
	}
	tb.Assign(map[string]*redis.Client{"a": nodeClient("127.0.0.1:7000")}, start)
	x := conns["127.0.0.1:7000"]
	if x == nil || len(tb.UnroutedNames()) != 0 {
		t.Fatalf("not routed: %v", tb.UnroutedNames())
	}
	testkit.WantChanges(t, tb, x, []string{"a"}, nil)
	tb.Confirmed(x, "a")
	tb.Connected(x)
	if !tb.Avail.IsUp() {
		t.Fatal("not up with every channel on a confirmed connection")
	}
	tb.Dropped(x, "a") // the slot moved
	if got := tb.UnroutedNames(); !slices.Equal(got, []string{"a"}) || !tb.TakeReload() {
		t.Fatalf("after sunsubscribe: unrouted %v and no reload", got)
	}
	if closed(tb.ReadyChan("a")) {
		t.Fatal("new clients do not wait for the subscription on the new owner")
	}
	testkit.WantChanges(t, tb, x, nil, []string{"a"}) // go-redis still lists it
	tb.Assign(map[string]*redis.Client{"a": nodeClient("127.0.0.1:7001")}, start)
	testkit.WantChanges(t, tb, conns["127.0.0.1:7001"], []string{"a"}, nil)
	if !tb.RetireIfIdle(x) {
		t.Fatal("a connection without channels was kept")
	}
	tb.Leave("a", h)
	tb.Moved(conns["127.0.0.1:7001"], bus.KeySlot("a"))
	testkit.WantChanges(t, tb, conns["127.0.0.1:7001"], nil, []string{"a"})
	if tb.Lookup("a") != nil {
		t.Fatal("channel kept after its last hub left")
	}
}

// hubs lists the hubs that need a channel.
func tableHubs(t *bus.ChannelTable, name string) []bus.Receiver {
	if st := t.Lookup(name); st != nil {
		return st.HubList()
	}
	return nil
}
