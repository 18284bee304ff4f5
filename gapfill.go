package redisws

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"sync"

	"go.uber.org/zap"
)

const (
	// maxHeld bounds the messages a channel holds while its gap is filled;
	// beyond it they are dropped and read from the stream afterwards.
	maxHeld = 10_000
	// fillAttempts is how often a fill tries to read the stream before the
	// gap counts as unfillable.
	fillAttempts = 3
	// fillPageBytes bounds the payload bytes of one page a fill reads (one
	// entry beyond it when that entry alone is larger): a fill delivers a
	// page before it reads the next, and never holds a whole stream.
	fillPageBytes = 1 << 20
)

// channelHistory is a node's own record of a history channel: the last
// recorded message it delivered to its clients, so that it sees its gaps (a
// subscription that came back, an offset that jumps) and fills them from the
// channel's stream, holding newer messages meanwhile.
type channelHistory struct {
	mu sync.Mutex
	// delivered is the last recorded message delivered; noHistory when the
	// channel had none when it was read; zero: not known yet.
	delivered position
	filling   bool       // a fill runs: messages from Redis wait in held
	held      []*message // in the order Redis sent them
	reread    bool       // the running fill must read again when it is done
	// last is the last recorded message delivered and its payload. When it
	// is at delivered (the position did not come from a read), a fill checks
	// that Redis still holds that payload there: a history that went back
	// and grew again past delivered shows only so (lua/reset.lua).
	last struct {
		pos     position
		payload string
	}
}

// advance records that the recorded message at pos, with payload, was
// delivered. h.mu held.
func (h *channelHistory) advance(pos position, payload string) {
	h.delivered = pos
	h.last.pos, h.last.payload = pos, payload
}

// floor is the furthest position of a channel this node delivered, zero
// when it has no record of the channel: the outbox has publish.lua give the
// channel a new epoch before it records, when Redis's history of that epoch
// ends below it (a replica without the newest entries took over), so that
// the offsets clients saw are never given to other messages.
func (t *channelTable) floor(name string) position {
	st := t.lookup(name)
	if st == nil {
		return position{}
	}
	h := st.history.Load()
	if h == nil {
		return position{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.delivered
}

// hold keeps m until the fill is done. h.mu held.
func (h *channelHistory) hold(m *message) {
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
func (b *broker) dispatchHistory(st *channelState, h *channelHistory, m *message) {
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
func (b *broker) deliverInOrder(st *channelState, h *channelHistory, m *message) bool {
	d := h.delivered
	switch {
	case !m.recorded():
	case d.epoch == "" || m.pos.epoch == d.epoch && m.pos.offset == d.offset+1,
		d == noHistory && m.pos.offset == 1:
		h.advance(m.pos, m.payload)
	case m.pos.epoch == d.epoch && m.pos.offset <= d.offset:
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
func (b *broker) resumeHistory(st *channelState, h *channelHistory) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.filling {
		h.reread = true
		return
	}
	b.startFill(st, h)
}

// startFill starts the channel's fill. h.mu held.
func (b *broker) startFill(st *channelState, h *channelHistory) {
	h.filling = true
	b.wg.Add(1)
	go b.fill(st, h)
}

// fill reads the stream after the last delivered offset and delivers what
// is missing, a page at a time, then what was held, until the channel is in
// order again.
func (b *broker) fill(st *channelState, h *channelHistory) {
	defer b.wg.Done()
	unfillable := false
	gapLost := false // the pages read so far of a gap missed messages
	for {
		h.mu.Lock()
		from := h.delivered
		h.reread = false
		payload, known := h.last.payload, from.epoch != "" && h.last.pos == from
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
			h.delivered = position{}
			unfillable = unfillable || from.epoch != ""
			gapLost = false
		case reset:
			h.delivered = r.latest
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
			again = b.releaseHeld(st, h, from.epoch)
		}
		if !again {
			h.filling = false
		}
		h.mu.Unlock()
		if again {
			continue
		}
		if unfillable {
			metrics.gapsUnfillable.Inc()
			b.gapChannel(st)
		}
		return
	}
}

// readForFill reads the entries after from, a page, a few times if Redis
// fails; a channel without a position asks for its position only. sum is
// the SHA1 of the payload delivered at from ("" when unknown); see readOnce.
func (b *broker) readForFill(ch string, from position, sum string) (r *historyRead, reset bool, err error) {
	var retry backoff
	for attempt := 1; ; attempt++ {
		r, reset, err = b.readOnce(ch, from, sum)
		if err == nil || b.ctx.Err() != nil {
			return r, reset, err
		}
		if attempt == fillAttempts || !retry.wait(b.ctx) {
			warnHistoryUnreadable.log([]zap.Field{zap.String("error", errorCode(err))}, zap.String("channel", ch), zap.Error(err))
			return nil, false, err
		}
	}
}

// readOnce is one try of readForFill, in one of the fills' read slots. A
// channel with a position is first checked, in one step with the decision,
// for a history that went back (a replica without the newest entries took
// over): it then gets a new epoch (reset), since its offsets after the last
// one Redis kept would name other messages than the ones delivered, and
// nothing is read.
func (b *broker) readOnce(ch string, from position, sum string) (*historyRead, bool, error) {
	select {
	case b.fillReads <- struct{}{}:
	case <-b.ctx.Done():
		return nil, false, b.ctx.Err()
	}
	defer func() { <-b.fillReads }()
	if from.epoch == "" {
		r, err := readHistory(b.ctx, b.client, ch, historyQuery{mode: readLast})
		return r, false, err
	}
	if from != noHistory {
		at, back, err := resetIfBack(b.ctx, b.client, ch, from, sum)
		if err != nil {
			return nil, false, err
		}
		if back {
			warnHistoryWentBack.log([]zap.Field{zap.Int64("delivered", from.offset), zap.Int64("redis_latest", at.offset)},
				zap.String("channel", ch))
			return &historyRead{latest: at}, true, nil
		}
	}
	r, err := readHistory(b.ctx, b.client, ch, historyQuery{mode: readAfter, from: from, budget: fillPageBytes})
	if err == nil && r.latest.epoch == from.epoch && r.latest.offset < from.offset {
		return nil, false, fmt.Errorf("the history of %s went back while it was read", ch)
	}
	return r, false, err
}

// applyRead delivers the entries a fill read and returns the channel's new
// position, and whether the next page is to be read; lost tells, across
// the pages of one gap, whether messages could not be filled. h.mu held.
func (b *broker) applyRead(st *channelState, h *channelHistory, from position, r *historyRead, lost *bool) (position, bool) {
	if from == noHistory {
		// Every epoch follows noHistory from its offset 1.
		from.epoch = r.latest.epoch
	}
	switch {
	case from.epoch == "":
		// A first position: the last offset before the held messages.
		at := r.latest
		for _, m := range h.held {
			if m.recorded() && m.pos.epoch == at.epoch {
				at.offset = min(at.offset, m.pos.offset-1)
				break
			}
		}
		return at, false
	case r.latest.epoch != from.epoch:
		// The history was lost: everything of the new epoch is new here,
		// and the next round reads it from its start.
		h.reread = true
		*lost = true
		return position{epoch: r.latest.epoch}, false
	case r.latest.offset == from.offset:
		return r.latest, false // nothing missed
	}
	*lost = *lost || !r.runsFrom(from.offset)
	at := b.deliverEntries(st, h, from, r)
	if at.offset > from.offset && at.offset < r.latest.offset {
		return at, true // the page ended on its budget
	}
	*lost = *lost || !r.reachesLatest(from.offset)
	if !*lost {
		metrics.gapsFilled.Inc()
	}
	return position{r.latest.epoch, max(at.offset, r.latest.offset)}, false
}

// deliverEntries delivers the entries of r after at, in order, and returns
// the position of the last one. h.mu held.
func (b *broker) deliverEntries(st *channelState, h *channelHistory, at position, r *historyRead) position {
	for _, e := range r.entries {
		if e.offset <= at.offset {
			continue
		}
		at.offset = e.offset
		h.last.pos, h.last.payload = at, e.payload
		b.enqueue(st, &message{channel: st.name, pos: at, payload: e.payload, binary: e.binary})
	}
	return at
}

// releaseHeld delivers the held messages that follow the channel's position,
// and drops those delivered already. It reports whether one of them shows
// another gap: the fill must read again, holding the rest. oldEpoch is the
// epoch before the fill: held messages of it that the new epoch left behind
// are delivered as they are. h.mu held.
func (b *broker) releaseHeld(st *channelState, h *channelHistory, oldEpoch string) bool {
	for i, m := range h.held {
		if m.recorded() && m.pos.epoch != h.delivered.epoch && m.pos.epoch == oldEpoch {
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
func (b *broker) gapChannel(st *channelState) {
	if base := st.presenceOf.Load(); base != nil {
		// Presence events may have been missed: envelope clients are told
		// to ask again.
		b.enqueue(st, presenceFrameMessage(st.name, presenceEvent{Type: "presence_reset", Channel: *base}))
		return
	}
	for _, hb := range st.hubList() {
		hb.gap(st.name)
	}
}
