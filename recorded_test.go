package redisws

import (
	"fmt"
	"strings"
	"testing"
	"time"

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
		keys := historyKeys(ch)
		for _, k := range keys {
			if keySlot(k) != keySlot(ch) {
				t.Errorf("channel %q (slot %d): key %q is in slot %d", ch, keySlot(ch), k, keySlot(k))
			}
		}
		if keys[0] == keys[1] || !strings.HasSuffix(keys[0], ":m") || !strings.HasSuffix(keys[1], ":s") {
			t.Errorf("channel %q: keys %q", ch, keys)
		}
	}
	if got := historyKeys("chat"); fmt.Sprint(got) != "[redis_ws:{chat}:m redis_ws:{chat}:s]" {
		t.Errorf("keys of chat: %v (the README names them)", got)
	}
}

// The TTLs the README gives: the stream's 24h by default, the meta hash's
// at least 30 days.
func TestHistoryTTLs(t *testing.T) {
	if o := (&History{Size: 1}).options(); o.ttl != 24*time.Hour || o.metaTTL() != 30*24*time.Hour {
		t.Errorf("default ttl %s, meta %s; want 24h and 720h", o.ttl, o.metaTTL())
	}
	long := (&History{Size: 1, TTL: caddy.Duration(90 * 24 * time.Hour)}).options()
	if long.metaTTL() != long.ttl {
		t.Errorf("ttl %s: meta %s, want the same", long.ttl, long.metaTTL())
	}
}

// Recorded frames go to Redis by runs of one channel and one history, at
// most maxRecordRun long; live frames one by one, in the order queued.
func TestRecordRuns(t *testing.T) {
	h1, h2 := &historyOptions{size: 1}, &historyOptions{size: 2}
	var batch []outMsg
	add := func(ch string, h *historyOptions, n int) {
		for range n {
			batch = append(batch, outMsg{channel: ch, history: h})
		}
	}
	add("a", h1, maxRecordRun+1)
	add("a", nil, 2)
	add("a", h1, 1)
	add("b", h1, 1)
	add("b", h2, 1)
	got := fmt.Sprint(recordRuns(batch))
	n := maxRecordRun
	want := fmt.Sprint([]sendRun{{0, n}, {n, n + 1}, {n + 1, n + 2}, {n + 2, n + 3}, {n + 3, n + 4}, {n + 4, n + 5}, {n + 5, n + 6}})
	if got != want {
		t.Fatalf("runs %s, want %s", got, want)
	}
}

// A replay goes before live messages, and the live copies of what it
// replayed, queued or still to come, are dropped: no gap and no duplicate
// at the seam.
func TestClientReplaySeam(t *testing.T) {
	c := testClient("chat", "news")
	rec := func(ch string, o int64) *frame.Frame {
		return (&frame.Message{Channel: ch, Pos: frame.Position{Epoch: "e", Offset: o}, Payload: fmt.Sprint(o)}).FrameFor(frame.RawFrames)
	}
	c.enqueue(rec("chat", 4)) // live, queued while the history was read
	c.enqueue(rec("news", 1))
	c.enqueue(rec("chat", 5))
	c.prepend("chat", []*frame.Frame{rec("chat", 3), rec("chat", 4)}, &frame.Position{Epoch: "e", Offset: 4})
	c.prepend("news", []*frame.Frame{frame.SubscribedFrame("news", &frame.Position{Epoch: "e", Offset: 0}, nil)}, nil)
	c.enqueue(rec("chat", 4)) // late duplicate
	c.enqueue(rec("chat", 6))
	c.enqueue((&frame.Message{Channel: "chat", Payload: "live"}).FrameFor(frame.RawFrames))
	var got []string
	for _, f := range c.queue {
		got = append(got, string(f.Wire[2:]))
	}
	want := `[3 4 {"type":"subscribed","channel":"news","offset":0,"epoch":"e"} 1 5 6 live]`
	if fmt.Sprint(got) != want {
		t.Fatalf("queue %v, want %s", got, want)
	}
}

// A frame with an idempotency key is a run of its own.
func TestRecordRunsIdempotent(t *testing.T) {
	h := &historyOptions{size: 1}
	batch := []outMsg{
		{channel: "a", history: h}, {channel: "a", history: h, ack: newPublishAck("k")},
		{channel: "a", history: h}, {channel: "a", history: h},
	}
	if got, want := fmt.Sprint(recordRuns(batch)), fmt.Sprint([]sendRun{{0, 1}, {1, 2}, {2, 4}}); got != want {
		t.Fatalf("runs %s, want %s", got, want)
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
	plain, marked := outMsg{}, outMsg{markedBinary: true}
	for _, tc := range []struct {
		run  []outMsg
		want string
	}{
		{[]outMsg{plain, plain}, ""},
		{[]outMsg{plain, marked, plain}, "tbt"},
		{[]outMsg{marked}, "b"},
	} {
		if got := recordTypes(tc.run); got != tc.want {
			t.Errorf("types %q, want %q", got, tc.want)
		}
	}
}
