package e2e

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
)

// heldStream is what the new master holds of a channel.
type heldStream struct {
	epoch   string
	entries []bus.Entry
}

func readStream(t *testing.T, rdb redis.Cmdable, ch string) heldStream {
	t.Helper()
	keys := bus.HistoryKeys(ch)
	epoch, err := rdb.HGet(context.Background(), keys[0], "e").Result()
	if err != nil {
		t.Fatalf("HGET %s e: %v", keys[0], err)
	}
	xs, err := rdb.XRange(context.Background(), keys[1], "-", "+").Result()
	if err != nil || len(xs) == 0 {
		t.Fatalf("XRANGE %s: %d entries, %v", keys[1], len(xs), err)
	}
	h := heldStream{epoch: epoch}
	for _, x := range xs {
		off, _ := strconv.ParseInt(strings.TrimSuffix(x.ID, "-0"), 10, 64)
		payload, _ := x.Values["d"].(string)
		h.entries = append(h.entries, bus.Entry{Offset: off, Payload: payload})
	}
	return h
}

func (h heldStream) has(p frame.Position, payload string) bool {
	if p.Epoch != h.epoch {
		return false
	}
	for _, e := range h.entries {
		if e.Offset == p.Offset {
			return e.Payload == payload
		}
	}
	return false
}

// drillSender sends "<prefix><n>" for n = 1, 2, … at a steady rate until
// halted.
type drillSender struct {
	c      *wsClient
	prefix string
	sent   atomic.Int64
	stop   chan struct{}
	done   chan struct{}
	err    error // valid after done
}

func startDrillSender(t *testing.T, c *wsClient, prefix string, rate int) *drillSender {
	s := &drillSender{c: c, prefix: prefix, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for n := int64(1); n <= 100_000; n++ {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			if s.err = c.TrySend(websocket.TextMessage, []byte(s.prefix+strconv.FormatInt(n, 10))); s.err != nil {
				return
			}
			s.sent.Store(n)
		}
	}()
	t.Cleanup(s.halt0)
	return s
}

func (s *drillSender) halt0() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

func (s *drillSender) halt(t *testing.T) {
	t.Helper()
	s.halt0()
	if s.err != nil {
		t.Fatalf("sender %s stopped at %d: %v", s.prefix, s.sent.Load(), s.err)
	}
}

// drillSub records what a subscriber receives, on its own goroutine.
type drillSub struct {
	c        *wsClient
	envelope bool

	mu   sync.Mutex
	got  []drillMsg
	high map[string]int64 // the highest number received from each sender
	stop chan struct{}
	done chan struct{}
}

type drillMsg struct {
	pos     frame.Position // envelope clients only
	payload string
}

func startDrillSub(t *testing.T, c *wsClient) *drillSub {
	s := &drillSub{c: c, envelope: c.Conn.Subprotocol() != "", high: map[string]int64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go s.record()
	t.Cleanup(func() { close(s.stop); <-s.done })
	return s
}

func (s *drillSub) record() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		m, r := s.c.pop(time.Now().Add(50 * time.Millisecond))
		if r == popClosed {
			return
		}
		if r != popMessage {
			continue
		}
		dm := drillMsg{payload: string(m.Data)}
		if s.envelope {
			e, err := readEnvelope(m.Data)
			if err != nil || e.Type != protocol.TypeMessage {
				continue // presence or subscribed frames: none expected after the first
			}
			dm = drillMsg{pos: frame.Position{Epoch: e.Epoch, Offset: e.offset()}, payload: e.data()}
		}
		prefix, n := splitNumbered(dm.payload)
		s.mu.Lock()
		s.got = append(s.got, dm)
		s.high[prefix] = max(s.high[prefix], n)
		s.mu.Unlock()
	}
}

// splitNumbered splits "<prefix><n>" after its last "|".
func splitNumbered(payload string) (string, int64) {
	i := strings.LastIndexByte(payload, '|')
	n, _ := strconv.ParseInt(payload[i+1:], 10, 64)
	return payload[:i+1], n
}

func (s *drillSub) highest(prefix string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.high[prefix]
}

// until waits until payload arrived and returns everything received.
func (s *drillSub) until(t *testing.T, payload string) received {
	t.Helper()
	var got []drillMsg
	testkit.Eventually(t, wait, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, m := range s.got {
			if m.payload == payload {
				got = append(got, s.got...)
				return true
			}
		}
		return false
	}, "%s: the new master's last entry %q never arrived", s.c.URL, payload)
	return got
}

type received []drillMsg

// check asserts that every entry held reached the subscriber once (at most
// twice when the first came from the lost master: a frame sent again), that
// an envelope client's positions never go back within an epoch and that no
// position carries two payloads. It returns the messages received that
// were sent after the replica's link was cut (cut: each sender's count then)
// and that the new master does not hold: lost to replication; and the
// duplicates.
func (got received) check(t *testing.T, s *drillSub, held heldStream, seen map[frame.Position]string, cut map[string]int64) (lost, dups int) {
	t.Helper()
	count := map[string]int{}
	for _, m := range got {
		count[m.payload]++
	}
	want := map[string]int{}
	for _, e := range held.entries {
		want[e.Payload]++
	}
	for _, e := range held.entries {
		switch n := count[e.Payload]; {
		case n < want[e.Payload]:
			t.Fatalf("%s: %q (offset %d of %s in the new master) arrived %d times, want %d: skipped",
				s.c.URL, e.Payload, e.Offset, held.epoch, n, want[e.Payload])
		case n > want[e.Payload]+1:
			t.Fatalf("%s: %q arrived %d times", s.c.URL, e.Payload, n)
		}
	}
	for p, n := range count {
		prefix, seq := splitNumbered(p)
		switch {
		case want[p] == 0 && seq > cut[prefix]:
			lost++
		case want[p] > 0 && n > want[p]:
			dups += n - want[p]
		}
	}
	if !s.envelope {
		return lost, dups
	}
	last := map[string]int64{}
	for _, m := range got {
		if prev, ok := seen[m.pos]; ok && prev != m.payload {
			t.Fatalf("%s: position %s seen with %q and with %q", s.c.URL, m.pos, prev, m.payload)
		}
		seen[m.pos] = m.payload
		if m.pos.Offset <= last[m.pos.Epoch] {
			t.Fatalf("%s: offset %d of %s after %d", s.c.URL, m.pos.Offset, m.pos.Epoch, last[m.pos.Epoch])
		}
		last[m.pos.Epoch] = m.pos.Offset
	}
	return lost, dups
}
