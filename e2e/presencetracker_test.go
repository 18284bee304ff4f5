package e2e

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

// Two trackers, as two nodes, on a real Redis. When one stops (its node
// died) and its user is back on the other before its entries expire, the
// sweep of the dead node's entries makes neither a leave nor a join; a
// user only the dead node had leaves.
func TestPresenceTrackersSweep(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	events := rdb.Subscribe(context.Background(), bus.PresenceEvents("room"))
	defer events.Close()
	if _, err := events.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	expect := func(want ...string) {
		t.Helper()
		var got []string
		for range want {
			select {
			case m := <-events.Channel():
				got = append(got, m.Payload)
			case <-time.After(wait):
				t.Fatalf("events %q, want %q", got, want)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			t.Fatalf("events %q, want %q", got, want)
		}
	}
	expectNone := func(d time.Duration) {
		t.Helper()
		select {
		case m := <-events.Channel():
			t.Fatalf("event %q, want none", m.Payload)
		case <-time.After(d):
		}
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	ctxA, stopA := context.WithCancel(context.Background())
	defer stopA()
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	a := bus.NewPresenceTracker(ctxA, &wg, rs.Client(t), false)
	b := bus.NewPresenceTracker(ctxB, &wg, rs.Client(t), false)
	p := &bus.PresenceOptions{Timeout: time.Second}

	a.Join("room", "alice", p)
	a.Join("room", "carol", p)
	b.Join("room", "bob", p)
	expect("join alice", "join bob", "join carol")

	stopA() // node A dies: its entries expire within a second
	b.Join("room", "alice", p)
	expect("leave carol") // swept; alice is on B now
	expectNone(500 * time.Millisecond)
	counts, err := bus.ReadPresence(context.Background(), rs.Client(t), []string{"room"}, 10)
	if c := counts["room"]; err != nil || c.Connections != 2 || !slices.Equal(c.Users, []string{"alice", "bob"}) {
		t.Fatalf("presence %+v, %v; want alice and bob with 2 connections", counts, err)
	}
	b.Leave("room", "alice")
	b.Leave("room", "bob")
	expect("leave alice", "leave bob")
	testkit.Eventually(t, wait, func() bool {
		n, _ := rdb.Exists(context.Background(), bus.PresenceKeys("room")...).Result()
		return n == 0
	}, "the channel's presence keys are still there with nobody in it")
}
