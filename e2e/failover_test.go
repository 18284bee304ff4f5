package e2e

// In-process tests of what a failover needs, against a redis-server of
// their own: the scripts' decisions that a channel's history went back, and
// the outbox holding back only the channels this node does not hear.

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/redis/go-redis/v9"
)

func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// record runs publish.lua for payloads with a floor, and returns where the
// last one went.
func record(t *testing.T, rdb redis.Scripter, ch string, floor frame.Position, payloads ...string) frame.Position {
	t.Helper()
	args := []any{ch, 100, 3600000, bus.MinMetaTTL.Milliseconds(), "0", floor.Epoch, floor.Offset, "", "1"}
	for _, p := range payloads {
		args = append(args, p)
	}
	res, err := bus.PublishScript.Run(context.Background(), rdb, bus.HistoryKeys(ch), args...).Slice()
	if err != nil || len(res) < 2 {
		t.Fatalf("publish.lua: %v %v", res, err)
	}
	epoch, _ := res[0].(string)
	offset, _ := res[1].(int64)
	return frame.Position{Epoch: epoch, Offset: offset}
}

// The fill's check (reset.lua): a new epoch when Redis's last offset of the
// delivered epoch is below the delivered one, or when its entry there holds
// another payload than the one delivered; none when it holds the same, or
// when the payload is unknown and the offset is there. A channel without
// history is left without one.
func TestHistoryWentBack(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	ctx := context.Background()
	e := record(t, rdb, "c", frame.Position{}, "m1", "m2", "m3", "m4", "m5")
	check := func(delivered frame.Position, sum string, wantBack bool) frame.Position {
		t.Helper()
		at, back, err := bus.ResetIfBack(ctx, rdb, "c", delivered, sum)
		if err != nil || back != wantBack {
			t.Fatalf("delivered %s, payload %q: reset %v (%v), want %v", delivered, sum, back, err, wantBack)
		}
		if back == (at.Epoch == delivered.Epoch) {
			t.Fatalf("delivered %s: position %s after reset %v", delivered, at, back)
		}
		return at
	}
	check(e, sha1Hex("m5"), false)
	check(frame.Position{Epoch: e.Epoch, Offset: 3}, sha1Hex("m3"), false)
	check(e, "", false)
	at := check(e, sha1Hex("another m5"), true) // the stream grew past it again
	if at.Offset != 5 || rdb.XLen(ctx, bus.HistoryKeys("c")[1]).Val() != 0 {
		t.Fatalf("after the reset: %s, %d entries; want offset 5 and no entry of the old epoch", at, rdb.XLen(ctx, bus.HistoryKeys("c")[1]).Val())
	}
	n := record(t, rdb, "c", at, "m6")
	check(frame.Position{Epoch: n.Epoch, Offset: 9}, "", true) // the last offset is below the delivered one

	if at, back, err := bus.ResetIfBack(ctx, rdb, "none", frame.Position{Epoch: "e", Offset: 1}, ""); err != nil || back || at.Epoch != "" {
		t.Fatalf("a channel without history: %s, reset %v, %v", at, back, err)
	}
	if n := rdb.Exists(ctx, bus.HistoryKeys("none")...).Val(); n != 0 {
		t.Fatalf("the check of a channel without history created %d keys", n)
	}
}

// publish.lua's floor: a new epoch before recording when the stored epoch
// is the floor's and its last offset below the floor's, so the offsets a
// node delivered are never given to other messages; nothing changes when
// the floor is behind, or of another epoch.
func TestPublishFloor(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	ctx := context.Background()
	f := record(t, rdb, "p", frame.Position{}, "1", "2", "3")
	if got := record(t, rdb, "p", f, "4"); got != (frame.Position{Epoch: f.Epoch, Offset: 4}) {
		t.Fatalf("floor at the last offset: %s, want %s:4", got, f.Epoch)
	}
	g := record(t, rdb, "p", frame.Position{Epoch: f.Epoch, Offset: 9}, "5")
	if g.Epoch == f.Epoch || g.Offset != 5 {
		t.Fatalf("floor beyond the last offset: %s; want offset 5 of a new epoch", g)
	}
	if n := rdb.XLen(ctx, bus.HistoryKeys("p")[1]).Val(); n != 1 {
		t.Fatalf("the new epoch's stream holds %d entries, want its own one", n)
	}
	if got := record(t, rdb, "p", frame.Position{Epoch: f.Epoch, Offset: 20}, "6"); got != (frame.Position{Epoch: g.Epoch, Offset: 6}) {
		t.Fatalf("floor of an older epoch: %s, want %s:6", got, g.Epoch)
	}
}

// The outbox holds the frames of a channel whose subscription is not
// confirmed, in order, while another channel's frames go.
func TestOutboxHoldsOneChannel(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	msgsA, msgsB := subscribed(t, rdb, "a"), subscribed(t, rdb, "b")
	o, tb, c := startOutboxOn(t, rs, "")
	h := new(fanout.Hub)
	tb.Join("a", h, false)
	tb.Join("b", h, false)
	testkit.WantChanges(t, tb, c, []string{"a", "b"}, nil)
	tb.Confirmed(c, "a")
	for _, f := range []struct{ ch, data string }{{"b", "b1"}, {"a", "a1"}, {"b", "b2"}, {"a", "a2"}} {
		if !o.Add(f.ch, []byte(f.data), false, nil, nil, nil) {
			t.Fatalf("%s dropped", f.data)
		}
	}
	if a1, a2 := nextPayload(t, msgsA), nextPayload(t, msgsA); a1 != "a1" || a2 != "a2" {
		t.Fatalf("a: %q, %q; want a1, a2 while b waits", a1, a2)
	}
	if err := rdb.Publish(context.Background(), "b", "marker").Err(); err != nil {
		t.Fatal(err)
	}
	tb.Confirmed(c, "b")
	for _, want := range []string{"marker", "b1", "b2"} {
		if got := nextPayload(t, msgsB); got != want {
			t.Fatalf("b: %q, want %q: its frames went before its subscription was confirmed, or out of order", got, want)
		}
	}
}
