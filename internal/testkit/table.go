package testkit

import (
	"slices"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
)

// SingleTable is a channel table served by one subscriber connection,
// which is not up yet and talks to no Redis.
func SingleTable() (*bus.ChannelTable, *bus.SubConn) {
	c := bus.NewSubConn(nil, "", nil)
	return bus.NewChannelTable(bus.NewAvailability("test"), c, nil), c
}

// WantChanges fails the test unless the table asks c to subscribe exactly
// sub and unsubscribe exactly unsub, in any order.
func WantChanges(t testing.TB, tb *bus.ChannelTable, c *bus.SubConn, sub, unsub []string) {
	t.Helper()
	gotSub, gotUnsub := tb.Changes(c)
	slices.Sort(gotSub)
	slices.Sort(gotUnsub)
	if !slices.Equal(gotSub, sub) || !slices.Equal(gotUnsub, unsub) {
		t.Fatalf("changes: subscribe %v, unsubscribe %v; want %v, %v", gotSub, gotUnsub, sub, unsub)
	}
}
