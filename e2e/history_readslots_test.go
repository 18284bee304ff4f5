package e2e

import (
	"context"
	"errors"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
)

// TestHistoryReadSlots: with every client slot taken, a client's read waits
// readSlotWait and is refused (the node answers it 503), while a fill still
// reads in its own slots; a freed slot serves the next client.
func TestHistoryReadSlots(t *testing.T) {
	rs := startRedis(t)
	b := bus.NewBroker(bus.BrokerOptions{Client: rs.Client(t), Name: rs.Addr})
	t.Cleanup(func() { _ = b.Close() })
	for range bus.ClientReadSlots {
		b.ClientReads <- struct{}{}
	}
	q := bus.HistoryQuery{Mode: bus.ReadLast}
	if _, err := b.ReadForClient(context.Background(), "chat", q); !errors.Is(err, bus.ErrReadsBusy) {
		t.Fatalf("a read with every client slot taken: %v, want %v", err, bus.ErrReadsBusy)
	}
	if r, _, err := b.ReadOnce("chat", frame.Position{}, ""); err != nil || r.Latest != frame.NoHistory {
		t.Fatalf("a fill's read with every client slot taken: %v, %v", r, err)
	}
	<-b.ClientReads
	if r, err := b.ReadForClient(context.Background(), "chat", q); err != nil || r.Latest != frame.NoHistory {
		t.Fatalf("a read with a slot free: %v, %v", r, err)
	}
}
