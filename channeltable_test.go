package redisws

import (
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
)

// The channel table is pure state: these tests drive it as the subscriber
// connections and the router do, without Redis.

func singleTable() (*channelTable, *subConn) {
	c := newSubConn(nil, "", nil)
	return newChannelTable(newAvailability("test"), c, nil), c
}

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

func wantChanges(t *testing.T, tb *channelTable, c *subConn, sub, unsub []string) {
	t.Helper()
	gotSub, gotUnsub := tb.changes(c)
	slices.Sort(gotSub)
	slices.Sort(gotUnsub)
	if !slices.Equal(gotSub, sub) || !slices.Equal(gotUnsub, unsub) {
		t.Fatalf("changes: subscribe %v, unsubscribe %v; want %v, %v", gotSub, gotUnsub, sub, unsub)
	}
}

// A channel is subscribed once for all its hubs, ready once Redis confirms
// it, unsubscribed with its last hub and then forgotten.
func TestChannelTableLifecycle(t *testing.T) {
	tb, c := singleTable()
	h1, h2 := new(hub), new(hub)
	gauge := gaugeValue(t, metrics.channels)
	tb.join("a", h1, false)
	tb.join("a", h2, false)
	ready := tb.readyChan("a")
	wantChanges(t, tb, c, []string{"a"}, nil)
	wantChanges(t, tb, c, nil, nil)
	if closed(ready) {
		t.Fatal("ready before Redis confirmed the subscription")
	}
	tb.confirmed(c, "a")
	if !closed(ready) {
		t.Fatal("not ready after the confirmation")
	}
	if got := gaugeValue(t, metrics.channels) - gauge; got != 1 {
		t.Fatalf("channels gauge moved by %v, want 1", got)
	}
	if hubs := tb.hubs("a"); len(hubs) != 2 {
		t.Fatalf("%d hubs, want 2", len(hubs))
	}
	tb.leave("a", h1)
	wantChanges(t, tb, c, nil, nil)
	tb.leave("a", h2)
	wantChanges(t, tb, c, nil, []string{"a"})
	if tb.lookup("a") != nil || len(c.routed) != 0 || len(c.subs) != 0 {
		t.Fatalf("channel kept after its last hub left: %+v", tb.lookup("a"))
	}
	if got := gaugeValue(t, metrics.channels) - gauge; got != 0 {
		t.Fatalf("channels gauge moved by %v, want 0", got)
	}
}

// Leaving and joining again before the first SUBSCRIBE is confirmed: the
// first reply must not count for the second SUBSCRIBE.
func TestChannelTableRejoinWhilePending(t *testing.T) {
	tb, c := singleTable()
	h := new(hub)
	tb.join("a", h, false)
	wantChanges(t, tb, c, []string{"a"}, nil)
	tb.leave("a", h)
	wantChanges(t, tb, c, nil, []string{"a"})
	tb.join("a", h, false)
	wantChanges(t, tb, c, []string{"a"}, nil)
	ready := tb.readyChan("a")
	tb.confirmed(c, "a") // the reply to the first SUBSCRIBE
	if closed(ready) {
		t.Fatal("ready on the reply to an earlier SUBSCRIBE")
	}
	tb.confirmed(c, "a")
	if !closed(ready) {
		t.Fatal("not ready after the reply to the last SUBSCRIBE")
	}
}

// With many channels subscribed, a change touches only the channel that
// changed.
func TestChannelTableChangesOnlyWhatChanged(t *testing.T) {
	tb, c := singleTable()
	h := new(hub)
	var all []string
	for i := range 1000 {
		all = append(all, fmt.Sprintf("ch%04d", i))
		tb.join(all[i], h, false)
	}
	slices.Sort(all)
	wantChanges(t, tb, c, all, nil)
	for _, ch := range all {
		tb.confirmed(c, ch)
	}
	tb.join("new", h, false)
	wantChanges(t, tb, c, []string{"new"}, nil)
	tb.leave("ch0005", h)
	wantChanges(t, tb, c, nil, []string{"ch0005"})
	if len(c.dirty) != 0 {
		t.Fatalf("%d channels still marked", len(c.dirty))
	}
}

// A lost connection releases every waiter, forgets the channels nobody
// needs, and its next connection subscribes every channel that is needed.
func TestChannelTableDisconnected(t *testing.T) {
	tb, c := singleTable()
	h := new(hub)
	tb.join("a", h, false)
	tb.join("b", h, false)
	wantChanges(t, tb, c, []string{"a", "b"}, nil)
	tb.connected(c)
	if !tb.avail.isUp() {
		t.Fatal("not up after the connection was confirmed")
	}
	ready := tb.readyChan("a")
	tb.leave("b", h)
	tb.disconnected(c)
	if !closed(ready) {
		t.Fatal("waiters kept while Redis is gone")
	}
	if tb.avail.isUp() {
		t.Fatal("up after the connection was lost")
	}
	if tb.lookup("b") != nil {
		t.Fatal("a channel nobody needs survived the disconnection")
	}
	wantChanges(t, tb, c, []string{"a"}, nil)
	if closed(tb.readyChan("a")) {
		t.Fatal("ready before the new SUBSCRIBE is confirmed")
	}
}

// An error reply (NOPERM) releases the waiters: no confirmation will come.
func TestChannelTableRefused(t *testing.T) {
	tb, c := singleTable()
	tb.join("secret", new(hub), false)
	wantChanges(t, tb, c, []string{"secret"}, nil)
	tb.refused(c)
	if !closed(tb.readyChan("secret")) {
		t.Fatal("waiters kept after Redis refused the subscription")
	}
}

// Sharded: channels wait for the router, are subscribed on their owner's
// connection, and go back to the router when Redis drops them there.
func TestChannelTableSharded(t *testing.T) {
	route := make(chan struct{}, 1)
	tb := newChannelTable(newAvailability("test"), nil, route)
	h := new(hub)
	tb.join("a", h, false)
	if got := tb.unroutedNames(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("unrouted %v, want [a]", got)
	}
	if !closed(route) || tb.avail.isUp() {
		t.Fatal("the router was not woken, or up with a channel unrouted")
	}
	nodeClient := func(addr string) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: addr}) // never dials here
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	conns := map[string]*subConn{}
	start := func(node string, _ *redis.Client) *subConn {
		conns[node] = newSubConn(nil, node, nil)
		return conns[node]
	}
	tb.assign(map[string]*redis.Client{"a": nodeClient("127.0.0.1:7000")}, start)
	x := conns["127.0.0.1:7000"]
	if x == nil || len(tb.unroutedNames()) != 0 {
		t.Fatalf("not routed: %v", tb.unroutedNames())
	}
	wantChanges(t, tb, x, []string{"a"}, nil)
	tb.confirmed(x, "a")
	tb.connected(x)
	if !tb.avail.isUp() {
		t.Fatal("not up with every channel on a confirmed connection")
	}
	tb.dropped(x, "a") // the slot moved
	if got := tb.unroutedNames(); !slices.Equal(got, []string{"a"}) || !tb.takeReload() {
		t.Fatalf("after sunsubscribe: unrouted %v and no reload", got)
	}
	if closed(tb.readyChan("a")) {
		t.Fatal("new clients do not wait for the subscription on the new owner")
	}
	wantChanges(t, tb, x, nil, []string{"a"}) // go-redis still lists it
	tb.assign(map[string]*redis.Client{"a": nodeClient("127.0.0.1:7001")}, start)
	wantChanges(t, tb, conns["127.0.0.1:7001"], []string{"a"}, nil)
	if !tb.retireIfIdle(x) {
		t.Fatal("a connection without channels was kept")
	}
	tb.leave("a", h)
	tb.moved(conns["127.0.0.1:7001"], keySlot("a"))
	wantChanges(t, tb, conns["127.0.0.1:7001"], nil, []string{"a"})
	if tb.lookup("a") != nil {
		t.Fatal("channel kept after its last hub left")
	}
}

// hubs lists the hubs that need a channel.
func (t *channelTable) hubs(name string) []receiver {
	if st := t.lookup(name); st != nil {
		return st.hubList()
	}
	return nil
}
