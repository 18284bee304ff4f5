package fanout

import (
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
)

func recorded(ch string, off int64) *frame.Message {
	return &frame.Message{Channel: ch, Pos: frame.Position{Epoch: "e", Offset: off}, Payload: fmt.Sprint(off)}
}

// payloads are the queued frames' messages' payloads, "S" for a frame
// without one (an opening frame).
func payloads(c *Client) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, f := range c.queue {
		if f.Msg == nil {
			out = append(out, "S")
		} else {
			out = append(out, f.Msg.Payload)
		}
	}
	return out
}

// A channel joined at run time: its live messages wait for its opening
// frames, which go first; what the replay held is not delivered twice; the
// channels it had go on meanwhile; after Leave nothing of it arrives.
func TestHubJoinLeave(t *testing.T) {
	h, tb, _ := testHub(0, false)
	c := NewClient([]string{"own"}, "", frame.EnvelopeFrames, 1<<20, testMetrics)
	h.Add(c)
	if err := h.Join(c, "room", 0); err != nil {
		t.Fatal(err)
	}
	if len(tableHubs(tb, "room")) != 1 {
		t.Fatal("the hub did not join the channel")
	}
	h.Deliver(recorded("room", 4))
	h.Deliver(recorded("own", 9))
	h.Deliver(recorded("room", 5))
	if got := fmt.Sprint(payloads(c)); got != "[9]" {
		t.Fatalf("queued before the opening frames: %s", got)
	}
	if first := c.FirstQueued("room", "e"); first != 4 {
		t.Fatalf("first held offset %d; want 4", first)
	}
	replay := []*frame.Frame{frame.NewFrame("S", true), recorded("room", 4).FrameFor(frame.EnvelopeFrames)}
	replay[0].Msg = nil
	c.FinishJoin("room", replay, &frame.Position{Epoch: "e", Offset: 4})
	h.Deliver(recorded("room", 6))
	if got := fmt.Sprint(payloads(c)); got != "[9 S 4 5 6]" {
		t.Fatalf("queued %s; want [9 S 4 5 6]", got)
	}
	if err := h.Join(c, "room", 0); !errors.Is(err, ErrAlreadySubscribed) {
		t.Fatalf("second join: %v", err)
	}
	if err := h.Leave(c, "room"); err != nil {
		t.Fatal(err)
	}
	h.Deliver(recorded("room", 7))
	if n := len(payloads(c)); n != 5 || len(tableHubs(tb, "room")) != 0 {
		t.Fatalf("after leave: %d queued, table %v", n, tableHubs(tb, "room"))
	}
	if err := h.Leave(c, "room"); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("second leave: %v", err)
	}
	if err := h.Leave(c, "own"); err != nil || h.ChannelCount(c) != 0 {
		t.Fatalf("leave of an own channel: %v, %d left", err, h.ChannelCount(c))
	}
}

// max_channels counts the route's own channels and the joined ones; a
// client that leaves one may join another; Remove leaves every channel.
func TestHubJoinLimit(t *testing.T) {
	h, tb, _ := testHub(0, false)
	c := NewClient([]string{"own"}, "", frame.EnvelopeFrames, 1<<20, testMetrics)
	h.Add(c)
	for i := range 2 {
		if err := h.Join(c, fmt.Sprint(i), 3); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Join(c, "x", 3); !errors.Is(err, ErrTooManyChannels) {
		t.Fatalf("join beyond max: %v", err)
	}
	_ = h.Leave(c, "0")
	if err := h.Join(c, "x", 3); err != nil {
		t.Fatal(err)
	}
	h.Remove(c)
	for _, ch := range []string{"own", "1", "x"} {
		if len(tableHubs(tb, ch)) != 0 {
			t.Fatalf("channel %s kept after its client left", ch)
		}
	}
}

// Held frames count against the queue's limit: a client whose joining
// channel floods is closed as too slow.
func TestHubJoinHeldBound(t *testing.T) {
	h, _, _ := testHub(0, false)
	c := NewClient(nil, "", frame.EnvelopeFrames, 100, testMetrics)
	h.Add(c)
	_ = h.Join(c, "room", 0)
	for i := range 20 {
		h.Deliver(&frame.Message{Channel: "room", Payload: fmt.Sprint("message ", i)})
	}
	if c.CloseCode() != closeTooSlow {
		t.Fatalf("close code %d; want %d", c.CloseCode(), closeTooSlow)
	}
}

// TestJoinReplaysShareSendQueue: run-time replays count against the
// client's queue, so the room the next one may hold is what is left, and a
// client that joins many channels without reading holds one send_queue.
func TestJoinReplaysShareSendQueue(t *testing.T) {
	h, _, _ := testHub(0, false)
	c := NewClient(nil, "", frame.EnvelopeFrames, 100, testMetrics)
	h.Add(c)
	replay := func(n int) []*frame.Frame {
		return []*frame.Frame{{Size: n}}
	}
	for i, want := range []int{40, 0, 0} {
		ch := fmt.Sprint("room:", i)
		if err := h.Join(c, ch, 0); err != nil {
			t.Fatal(err)
		}
		c.FinishJoin(ch, replay(min(c.Room(), 60)), nil)
		if got := c.Room(); got != want {
			t.Fatalf("after replay %d: room %d; want %d", i, got, want)
		}
	}
	if c.queued != 100 {
		t.Errorf("queued %d bytes; want the one send_queue of 100", c.queued)
	}
	h.Remove(c)
}

// BenchmarkJoin: a join and a leave, on a client holding held channels;
// the cost must not grow with held (issue: a subscribe on a connection
// holding 100 channels costs no more than the first).
func BenchmarkJoin(b *testing.B) {
	for _, held := range []int{0, 100} {
		b.Run(fmt.Sprint("held=", held), func(b *testing.B) {
			h, _, _ := testHub(0, false)
			c := NewClient(nil, "", frame.EnvelopeFrames, 1<<20, testMetrics)
			h.Add(c)
			for i := range held {
				_ = h.Join(c, fmt.Sprint("held:", i), 0)
				c.FinishJoin(fmt.Sprint("held:", i), nil, nil)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := h.Join(c, "room", 0); err != nil {
					b.Fatal(err)
				}
				c.FinishJoin("room", nil, nil)
				_ = h.Leave(c, "room")
			}
		})
	}
}

// BenchmarkSubscriptionMemory reports the heap one run-time subscription
// holds in the hub and its client (the channel's own state, shared by its
// subscribers, aside): 1,000 clients join 20 of 200 channels each, with a
// position seen, as after a subscribe on a route with history.
func BenchmarkSubscriptionMemory(b *testing.B) {
	const clients, perClient, channels = 1000, 20, 200
	for b.Loop() {
		h, _, _ := testHub(0, false)
		cs := make([]*Client, clients)
		for i := range cs {
			cs[i] = NewClient(nil, "", frame.EnvelopeFrames, 1<<20, testMetrics)
			h.Add(cs[i])
		}
		for ch := range channels { // every channel has a subscriber already
			_ = h.Join(cs[0], fmt.Sprint("room:", ch), 0)
			cs[0].FinishJoin(fmt.Sprint("room:", ch), nil, nil)
		}
		names := make([]string, channels)
		for i := range names {
			names[i] = fmt.Sprint("room:", i)
		}
		before := heapInUse()
		for i, c := range cs[1:] {
			for j := range perClient {
				ch := names[(i*7+j)%channels]
				_ = h.Join(c, ch, 0)
				c.FinishJoin(ch, nil, &frame.Position{Epoch: "6755e0a10f3a2", Offset: 41})
			}
		}
		after := heapInUse()
		b.ReportMetric(float64(after-before)/float64((clients-1)*perClient), "B/subscription")
		runtime.KeepAlive(cs)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
