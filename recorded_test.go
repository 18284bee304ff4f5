package redisws

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddyserver/caddy/v2"
)

// What a node makes of a Redis message: recorded ones give their position
// and payload, marked ones their type, everything else is delivered as it
// came.
func TestParseMessage(t *testing.T) {
	for _, tc := range []struct {
		in      string
		pos     frame.Position
		payload string
		binary  bool
	}{
		{"hi", frame.Position{}, "hi", false},
		{"\x00rws:6755e0a10f3a2:42:hi", frame.Position{Epoch: "6755e0a10f3a2", Offset: 42}, "hi", false},
		{"\x00rws:e:1:", frame.Position{Epoch: "e", Offset: 1}, "", false},
		{"\x00rws:e:7:a:b:c", frame.Position{Epoch: "e", Offset: 7}, "a:b:c", false},
		{"\x00rws:::\x00rws:e:1:x", frame.Position{}, "\x00rws:e:1:x", false}, // an escaped live message
		{"\x00rws:e:0:x", frame.Position{}, "\x00rws:e:0:x", false},           // no offset 0
		{"\x00rws:e:-3:x", frame.Position{}, "\x00rws:e:-3:x", false},
		{"\x00rws:e f:1:x", frame.Position{}, "\x00rws:e f:1:x", false}, // not an epoch
		{"\x00rws:e", frame.Position{}, "\x00rws:e", false},
		{"\x00rwsb:::hi", frame.Position{}, "hi", true}, // a live binary message that is valid UTF-8
		{"\x00rwsb:::", frame.Position{}, "", true},
		{"\x00rwsb:e:3:\x00rwsb:::", frame.Position{Epoch: "e", Offset: 3}, "\x00rwsb:::", true},
		{"\x00rws:::\x00rwsb:::x", frame.Position{}, "\x00rwsb:::x", false},
		{"\x00rwsbb:::x", frame.Position{}, "\x00rwsbb:::x", false},
		{"\x00rwsx:::x", frame.Position{}, "\x00rwsx:::x", false},
		{"\x00rwsb:e", frame.Position{}, "\x00rwsb:e", false},
	} {
		m := frame.ParseMessage("chat", tc.in)
		if m.Pos != tc.pos || m.Payload != tc.payload || m.Binary != tc.binary {
			t.Errorf("%q: got %v %q binary %v, want %v %q binary %v", tc.in, m.Pos, m.Payload, m.Binary, tc.pos, tc.payload, tc.binary)
		}
	}
	for _, p := range []string{"hi", "\x00rws:e:1:x", "\x00rws:::y", "\x00rws"} {
		if m := frame.ParseMessage("chat", string(frame.LiveWire([]byte(p), false))); m.Recorded() || m.Payload != p {
			t.Errorf("live %q escaped and read back as %v %q", p, m.Pos, m.Payload)
		}
	}
}

// The keys of a channel's history are in the channel's Cluster slot,
// whatever braces the channel has.
func TestHistoryKeysShareTheChannelSlot(t *testing.T) {
	for _, ch := range []string{"chat", "room:a", "{user}:inbox", "a{}b", "a{b", "}x{", "a{}b}}", "{", "{}", strings.Repeat("x", 256)} {
		keys := bus.HistoryKeys(ch)
		for _, k := range keys {
			if bus.KeySlot(k) != bus.KeySlot(ch) {
				t.Errorf("channel %q (slot %d): key %q is in slot %d", ch, bus.KeySlot(ch), k, bus.KeySlot(k))
			}
		}
		if keys[0] == keys[1] || !strings.HasSuffix(keys[0], ":m") || !strings.HasSuffix(keys[1], ":s") {
			t.Errorf("channel %q: keys %q", ch, keys)
		}
	}
	if got := bus.HistoryKeys("chat"); fmt.Sprint(got) != "[redis_ws:{chat}:m redis_ws:{chat}:s]" {
		t.Errorf("keys of chat: %v (the README names them)", got)
	}
}

// The TTLs the README gives: the stream's 24h by default, the meta hash's
// at least 30 days.
func TestHistoryTTLs(t *testing.T) {
	if o := (&History{Size: 1}).options(); o.Ttl != 24*time.Hour || o.MetaTTL() != 30*24*time.Hour {
		t.Errorf("default ttl %s, meta %s; want 24h and 720h", o.Ttl, o.MetaTTL())
	}
	long := (&History{Size: 1, TTL: caddy.Duration(90 * 24 * time.Hour)}).options()
	if long.MetaTTL() != long.Ttl {
		t.Errorf("ttl %s: meta %s, want the same", long.Ttl, long.MetaTTL())
	}
}

// Only a binary frame whose bytes are valid UTF-8 is marked, and
// publish.lua is given types only for a run that holds one.
func TestRecordTypes(t *testing.T) {
	for _, tc := range []struct {
		data   string
		binary bool
		want   bool
	}{{"hi", true, true}, {"", true, true}, {"\xff", true, false}, {"hi", false, false}, {"\xff", false, false}} {
		if got := frame.MarkBinary([]byte(tc.data), tc.binary); got != tc.want {
			t.Errorf("markBinary(%q, %v) = %v", tc.data, tc.binary, got)
		}
	}
	plain, marked := bus.OutMsg{}, bus.OutMsg{MarkedBinary: true}
	for _, tc := range []struct {
		run  []bus.OutMsg
		want string
	}{
		{[]bus.OutMsg{plain, plain}, ""},
		{[]bus.OutMsg{plain, marked, plain}, "tbt"},
		{[]bus.OutMsg{marked}, "b"},
	} {
		if got := bus.RecordTypes(tc.run); got != tc.want {
			t.Errorf("types %q, want %q", got, tc.want)
		}
	}
}
