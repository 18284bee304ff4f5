package fanout

import (
	"fmt"
	"strings"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
)

// A replay goes before live messages, and the live copies of what it
// replayed, queued or still to come, are dropped: no gap and no duplicate
// at the seam.
func TestClientReplaySeam(t *testing.T) {
	c := testClient("chat", "news")
	rec := func(ch string, o int64) *frame.Frame {
		return (&frame.Message{Channel: ch, Pos: frame.Position{Epoch: "e", Offset: o}, Payload: fmt.Sprint(o)}).FrameFor(frame.RawFrames)
	}
	c.Enqueue(rec("chat", 4)) // live, queued while the history was read
	c.Enqueue(rec("news", 1))
	c.Enqueue(rec("chat", 5))
	c.Prepend("chat", []*frame.Frame{rec("chat", 3), rec("chat", 4)}, &frame.Position{Epoch: "e", Offset: 4})
	c.Prepend("news", []*frame.Frame{frame.SubscribedFrame("news", &frame.Position{Epoch: "e", Offset: 0}, nil)}, nil)
	c.Enqueue(rec("chat", 4)) // late duplicate
	c.Enqueue(rec("chat", 6))
	c.Enqueue((&frame.Message{Channel: "chat", Payload: "live"}).FrameFor(frame.RawFrames))
	var got []string
	for _, f := range c.queue {
		got = append(got, string(f.Wire[2:]))
	}
	want := `[3 4 {"type":"subscribed","channel":"news","offset":0,"epoch":"e"} 1 5 6 live]`
	if fmt.Sprint(got) != want {
		t.Fatalf("queue %v, want %s", got, want)
	}
}

// BenchmarkEnqueue measures the fan-out step of the hub alone: one prepared
// frame handed to every client's queue. It should not allocate per delivery.
func BenchmarkEnqueue(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("clients-%d", n), func(b *testing.B) {
			h := NewHub(bus.NewChannelTable(bus.NewAvailability("bench"), bus.NewSubConn(nil, "", nil), nil), func() {}, HubOptions{})
			clients := make([]*Client, n)
			for i := range clients {
				clients[i] = NewClient([]string{"bench"}, "", frame.RawFrames, 1<<30, testMetrics)
				h.Add(clients[i])
			}
			m := &frame.Message{Channel: "bench", Payload: strings.Repeat("x", 64)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				h.Deliver(m)
				if i%256 == 255 { // what a writer does: take the queue, keep the slice
					for _, c := range clients {
						c.queue, c.queued = c.queue[:0], 0
					}
				}
			}
			b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
