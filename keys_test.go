package redisws

import (
	"strings"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
)

// channelKeyNames are every key and internal channel name of ch, with an
// idempotency key.
func channelKeyNames(ch string) []string {
	names := append(bus.HistoryKeys(ch), bus.PresenceKeys(ch)...)
	return append(names, bus.PresenceEvents(ch), bus.IdempotencyKey(ch, "room:{http.request.uri.path.1}", "alice", "m"))
}

// FuzzChannelKeys: the keys of two different channels never meet, whatever
// the names hold (braces, colons, the suffixes of other keys), and every
// key of a channel is in the channel's Cluster slot.
func FuzzChannelKeys(f *testing.F) {
	for _, pair := range [][2]string{
		{"room:{u}", "room:{u}:i"}, // the audit's collision: a meta key made by an idempotency key
		{"chat", "{chat}"},
		{"a:m", "a"},
		{"{x}:1:a", "{x}:1"},
		{"a{}b", "a{}b}"},
		{"}", "{"},
		{"redis_ws", "redis_ws:{redis_ws}"},
	} {
		f.Add(pair[0], pair[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if a == b || a == "" || b == "" {
			return
		}
		seen := make(map[string]string)
		for _, ch := range []string{a, b} {
			for _, k := range channelKeyNames(ch) {
				if other, ok := seen[k]; ok {
					t.Fatalf("key %q is both %q's and %q's", k, other, ch)
				}
				seen[k] = ch
				if bus.KeySlot(k) != bus.KeySlot(ch) {
					t.Fatalf("channel %q (slot %d): key %q is in slot %d", ch, bus.KeySlot(ch), k, bus.KeySlot(k))
				}
			}
		}
	})
}

// An Idempotency-Key names a key of its own for every route, user and key:
// the same key from someone else is another key.
func TestIdempotencyKeyScope(t *testing.T) {
	base := bus.IdempotencyKey("chat", "chat\n", "alice", "order-1")
	for _, other := range []string{
		bus.IdempotencyKey("chat", "chat\n", "", "order-1"),
		bus.IdempotencyKey("chat", "chat\n", "bob", "order-1"),
		bus.IdempotencyKey("chat", "news\n", "alice", "order-1"),
		bus.IdempotencyKey("chat", "chat\n", "alice", "order-2"),
		bus.IdempotencyKey("chat", "chat\nalice", "", "order-1"), // the parts cannot slide into each other
	} {
		if other == base {
			t.Errorf("%q is the key of alice's order-1 on chat too", other)
		}
	}
	if !strings.HasPrefix(base, "redis_ws:{chat}:i:") || len(base) != len("redis_ws:{chat}:i:")+64 {
		t.Errorf("key %q: want redis_ws:{chat}:i: and a sha256 in hex", base)
	}
}
