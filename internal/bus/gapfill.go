package bus

import (
	"crypto/sha1"
	"encoding/hex"
	"sync"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

const (
	// maxHeld bounds the messages a channel holds while its gap is filled;
	// beyond it they are dropped and read from the stream afterwards.
	maxHeld = 10_000
	// fillAttempts is how often a fill tries to read the stream before the
	// gap counts as unfillable.
	fillAttempts = 3
	// FillPageBytes bounds the payload bytes of one page a fill reads (one
	// entry beyond it when that entry alone is larger): a fill delivers a
	// page before it reads the next, and never holds a whole stream.
	FillPageBytes = 1 << 20
)

// channelHistory is a node's own record of a history channel: the last
// recorded message it delivered to its clients, so that it sees its gaps (a
// subscription that came back, an offset that jumps) and fills them from the
// channel's stream, holding newer messages meanwhile.
type channelHistory struct {
	mu sync.Mutex
	// delivered is the last recorded message delivered; noHistory when the
	// channel had none when it was read; zero: not known yet.
	delivered frame.Position
	filling   bool             // a fill runs: messages from Redis wait in held
	held      []*frame.Message // in the order Redis sent them
	reread    bool             // the running fill must read again when it is done
	// last is the last recorded message delivered and its payload. When it
	// is at delivered (the position did not come from a read), a fill checks
	// that Redis still holds that payload there: a history that went back
	// and grew again past delivered shows only so (lua/reset.lua).
	last struct {
		pos     frame.Position
		payload string
	}
}

// advance records that the recorded message at pos, with payload, was
// delivered. h.mu held.
func (h *channelHistory) advance(pos frame.Position, payload string) {
	h.delivered = pos
	h.last.pos, h.last.payload = pos, payload
}

// floor is the furthest position of a channel this node delivered, zero
// when it has no record of the channel: the outbox has publish.lua give the
// channel a new epoch before it records, when Redis's history of that epoch
// ends below it (a replica without the newest entries took over), so that
// the offsets clients saw are never given to other messages.
func (t *ChannelTable) floor(name string) frame.Position {
	st := t.Lookup(name)
	if st == nil {
		return frame.Position{}
	}
	h := st.history.Load()
	if h == nil {
		return frame.Position{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.delivered
}

// hold keeps m until the fill is done. h.mu held.
func (h *channelHistory) hold(m *frame.Message) {
	if len(h.held) >= maxHeld {
		// Recorded messages are in the stream: the fill reads them again.
		// Live ones are lost, like any live message during an outage.
		h.held, h.reread = nil, true
	}
	h.held = append(h.held, m)
}

// dispatchHistory delivers a message of a history channel in order, or
// holds it while a gap is filled; a gap seen here starts a fill. It runs on
// the subscriber's goroutine, so the fill is always started before the next
// message is looked at.
func (b *Broker) dispatchHistory(st *channelState, h *channelHistory, m *frame.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.filling {
		h.hold(m)
		return
	}
	if !b.deliverInOrder(st, h, m) {
		h.hold(m)
		b.startFill(st, h)
	}
}

// deliverInOrder delivers m if it is next: live, the first recorded one
// while the position is not known, the offset after the last one delivered,
// or offset 1 of any epoch after noHistory. false means there is a gap
// before it. h.mu held.
func (b *Broker) deliverInOrder(st *channelState, h *channelHistory, m *frame.Message) bool {
	d := h.delivered
	switch {
	case !m.Recorded():
	case d.Epoch == "" || m.Pos.Epoch == d.Epoch && m.Pos.Offset == d.Offset+1,
		d == frame.NoHistory && m.Pos.Offset == 1:
		h.advance(m.Pos, m.Payload)
	case m.Pos.Epoch == d.Epoch && m.Pos.Offset <= d.Offset:
		return true // delivered already (by a fill)
	default:
		return false
	}
	b.enqueue(st, m)
	return true
}

// resumeHistory reads what a channel missed, now that its subscription is
// confirmed: on a first subscription, to learn its position; after a
// reconnect or a slot move, to deliver what was published meanwhile.
// Messages that come after the confirmation are held until then.
func (b *Broker) resumeHistory(st *channelState, h *channelHistory) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.filling {
		h.reread = true
		return
	}
	b.startFill(st, h)
}

// startFill starts the channel's fill. h.mu held.
func (b *Broker) startFill(st *channelState, h *channelHistory) {
	h.filling = true
	b.wg.Add(1)
	go b.fill(st, h)
}

// fill reads the stream after the last delivered offset and delivers what
// is missing, a page at a time, then what was held, until the channel is in
// order again.
func (b *Broker) fill(st *channelState, h *channelHistory) {
	defer b.wg.Done()
	unfillable := false
	gapLost := false // the pages read so far of a gap missed messages
	for {
		h.mu.Lock()
		from := h.delivered
		h.reread = false
		payload, known := h.last.payload, from.Epoch != "" && h.last.pos == from
		h.mu.Unlock()

		sum := ""
		if known {
			s := sha1.Sum([]byte(payload))
			sum = hex.EncodeToString(s[:])
		}
		r, reset, err := b.readForFill(st.name, from, sum)
		if b.ctx.Err() != nil {
			return
		}
		h.mu.Lock()
		more := false
		switch {
		case err != nil:
			// Redis cannot be read: what was missed is lost (nothing was,
			// without a position yet); the next recorded message gives the
			// position again.
			h.delivered = frame.Position{}
			unfillable = unfillable || from.Epoch != ""
			gapLost = false
		case reset:
			h.delivered = r.Latest
			unfillable = true
			gapLost = false
		default:
			h.delivered, more = b.applyRead(st, h, from, r, &gapLost)
			unfillable = unfillable || gapLost
			if !more {
				gapLost = false
			}
		}
		again := more || h.reread
		if !again {
			again = b.releaseHeld(st, h, from.Epoch)
		}
		if !again {
			h.filling = false
		}
		h.mu.Unlock()
		if again {
			continue
		}
		if unfillable {
			Metrics.gapsUnfillable.Inc()
			b.gapChannel(st)
		}
		return
	}
}

// releaseHeld delivers the held messages that follow the channel's position,
// and drops those delivered already. It reports whether one of them shows
// another gap: the fill must read again, holding the rest. oldEpoch is the
// epoch before the fill: held messages of it that the new epoch left behind
// are delivered as they are. h.mu held.
func (b *Broker) releaseHeld(st *channelState, h *channelHistory, oldEpoch string) bool {
	for i, m := range h.held {
		if m.Recorded() && m.Pos.Epoch != h.delivered.Epoch && m.Pos.Epoch == oldEpoch {
			b.enqueue(st, m)
			continue
		}
		if !b.deliverInOrder(st, h, m) {
			h.held = append(h.held[:0], h.held[i:]...)
			return true
		}
	}
	clear(h.held)
	h.held = h.held[:0]
	return false
}

// gapChannel applies the gap_policy of every hub of a channel whose gap
// could not be filled.
func (b *Broker) gapChannel(st *channelState) {
	if base := st.presenceOf.Load(); base != nil {
		// Presence events may have been missed: envelope clients are told
		// to ask again.
		b.enqueue(st, presenceFrameMessage(st.name, protocol.NewPresenceReset(*base)))
		return
	}
	for _, hb := range st.HubList() {
		hb.Gap(st.name)
	}
}
