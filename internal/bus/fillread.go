package bus

// Reading a gap from the history and delivering what was read: the Redis
// side of a fill (gapfill.go holds the order and what waits meanwhile).

import (
	"fmt"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"go.uber.org/zap"
)

// readForFill reads the entries after from, a page, a few times if Redis
// fails; a channel without a position asks for its position only. sum is
// the SHA1 of the payload delivered at from ("" when unknown); see ReadOnce.
func (b *Broker) readForFill(ch string, from frame.Position, sum string) (r *HistoryRead, reset bool, err error) {
	var retry backoff
	for attempt := 1; ; attempt++ {
		r, reset, err = b.ReadOnce(ch, from, sum)
		if err == nil || b.ctx.Err() != nil {
			return r, reset, err
		}
		if attempt == fillAttempts || !retry.Wait(b.ctx) {
			warnHistoryUnreadable.log([]zap.Field{zap.String("error", errorCode(err))}, zap.String("channel", ch), zap.Error(err))
			return nil, false, err
		}
	}
}

// ReadOnce is one try of readForFill, in one of the fills' read slots. A
// channel with a position is first checked, in one step with the decision,
// for a history that went back (a replica without the newest entries took
// over): it then gets a new epoch (reset), since its offsets after the last
// one Redis kept would name other messages than the ones delivered, and
// nothing is read.
func (b *Broker) ReadOnce(ch string, from frame.Position, sum string) (*HistoryRead, bool, error) {
	select {
	case b.fillReads <- struct{}{}:
	case <-b.ctx.Done():
		return nil, false, b.ctx.Err()
	}
	defer func() { <-b.fillReads }()
	if from.Epoch == "" {
		r, err := readHistory(b.ctx, b.Client, ch, HistoryQuery{Mode: ReadLast})
		return r, false, err
	}
	if from != frame.NoHistory {
		at, back, err := ResetIfBack(b.ctx, b.Client, ch, from, sum)
		if err != nil {
			return nil, false, err
		}
		if back {
			warnHistoryWentBack.log([]zap.Field{zap.Int64("delivered", from.Offset), zap.Int64("redis_latest", at.Offset)},
				zap.String("channel", ch))
			return &HistoryRead{Latest: at}, true, nil
		}
	}
	r, err := readHistory(b.ctx, b.Client, ch, HistoryQuery{Mode: readAfter, From: from, Budget: FillPageBytes})
	if err == nil && r.Latest.Epoch == from.Epoch && r.Latest.Offset < from.Offset {
		return nil, false, fmt.Errorf("the history of %s went back while it was read", ch)
	}
	return r, false, err
}

// applyRead delivers the entries a fill read and returns the channel's new
// position, and whether the next page is to be read; lost tells, across
// the pages of one gap, whether messages could not be filled. h.mu held.
func (b *Broker) applyRead(st *channelState, h *channelHistory, from frame.Position, r *HistoryRead, lost *bool) (frame.Position, bool) {
	if from == frame.NoHistory {
		// Every epoch follows noHistory from its offset 1.
		from.Epoch = r.Latest.Epoch
	}
	switch {
	case from.Epoch == "":
		// A first position: the last offset before the held messages.
		at := r.Latest
		for _, m := range h.held {
			if m.Recorded() && m.Pos.Epoch == at.Epoch {
				at.Offset = min(at.Offset, m.Pos.Offset-1)
				break
			}
		}
		return at, false
	case r.Latest.Epoch != from.Epoch:
		// The history was lost: everything of the new epoch is new here,
		// and the next round reads it from its start.
		h.reread = true
		*lost = true
		return frame.Position{Epoch: r.Latest.Epoch}, false
	case r.Latest.Offset == from.Offset:
		return r.Latest, false // nothing missed
	}
	*lost = *lost || !r.runsFrom(from.Offset)
	at := b.deliverEntries(st, h, from, r)
	if at.Offset > from.Offset && at.Offset < r.Latest.Offset {
		return at, true // the page ended on its budget
	}
	*lost = *lost || !r.reachesLatest(from.Offset)
	if !*lost {
		Metrics.gapsFilled.Inc()
	}
	return frame.Position{Epoch: r.Latest.Epoch, Offset: max(at.Offset, r.Latest.Offset)}, false
}

// deliverEntries delivers the entries of r after at, in order, and returns
// the position of the last one. h.mu held.
func (b *Broker) deliverEntries(st *channelState, h *channelHistory, at frame.Position, r *HistoryRead) frame.Position {
	for _, e := range r.Entries {
		if e.Offset <= at.Offset {
			continue
		}
		at.Offset = e.Offset
		h.last.pos, h.last.payload = at, e.Payload
		b.enqueue(st, &frame.Message{Channel: st.name, Pos: at, Payload: e.Payload, Binary: e.Binary})
	}
	return at
}
