package bus

import (
	"slices"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
)

// MaxRecordRun caps the recorded frames of one script call, which holds
// Redis for its whole run.
const MaxRecordRun = 64

// SendRun is batch[start:end]: one live frame, or recorded frames of one
// channel.
type SendRun struct{ start, end int }

func RecordRuns(batch []OutMsg) []SendRun {
	runs := make([]SendRun, 0, len(batch))
	for i, m := range batch {
		// A frame with an idempotency key is a run of its own: the script
		// checks the key for the whole run.
		if n := len(runs); n > 0 && m.History != nil && m.IdempotencyKey() == "" {
			last := &runs[n-1]
			first := batch[last.start]
			if first.History == m.History && first.Channel == m.Channel && first.IdempotencyKey() == "" && last.end-last.start < MaxRecordRun {
				last.end = i + 1
				continue
			}
		}
		runs = append(runs, SendRun{i, i + 1})
	}
	return runs
}

// recordArgs are publish.lua's arguments for a run of frames: channel,
// size, TTLs, sharded, the channel's floor (the furthest position this node
// delivered), the types, whether the channel may get its first epoch, the
// payloads.
func (o *Outbox) recordArgs(run []OutMsg) []any {
	h := run[0].History
	sharded := "0"
	if o.sharded {
		sharded = "1"
	}
	floor := o.table.floor(run[0].Channel)
	mayCreate := "0"
	if o.mayCreate(run[0].Channel, h, floor) {
		mayCreate = "1"
	}
	args := make([]any, 0, 9+len(run))
	args = append(args, run[0].Channel, h.Size, h.Ttl.Milliseconds(), h.MetaTTL().Milliseconds(), sharded, floor.Epoch, floor.Offset, RecordTypes(run), mayCreate)
	for _, m := range run {
		args = append(args, m.data)
	}
	return args
}

// maxKnown bounds the channels the outbox remembers having a history.
const maxKnown = 10_000

// mayCreate tells whether a run may give channel ch its first epoch: always
// when the route has no limit, or the channel is known to have a history
// already (this node delivered or recorded a message of it), otherwise when
// the route's new_channels allows one more now. A channel that turns out to
// have a history is recorded whatever this says.
func (o *Outbox) mayCreate(ch string, h *HistoryOptions, floor frame.Position) bool {
	if h.NewChannels == nil || floor.Epoch != "" && floor != frame.NoHistory {
		return true
	}
	if _, ok := o.known[ch]; ok {
		return true
	}
	return h.NewChannels.Allow()
}

// learn records that ch has a history, forgetting another channel when
// there are maxKnown.
func (o *Outbox) learn(ch string) {
	if _, ok := o.known[ch]; ok {
		return
	}
	if len(o.known) >= maxKnown {
		for k := range o.known { // any one: map order is random
			delete(o.known, k)
			break
		}
	}
	o.known[ch] = struct{}{}
}

// RecordTypes is publish.lua's types argument: "" when no frame of the run
// is marked binary, else one character per frame, b (binary) or t (text,
// or what its bytes say).
func RecordTypes(run []OutMsg) string {
	if !slices.ContainsFunc(run, func(m OutMsg) bool { return m.MarkedBinary }) {
		return ""
	}
	types := make([]byte, len(run))
	for i, m := range run {
		types[i] = 't'
		if m.MarkedBinary {
			types[i] = 'b'
		}
	}
	return string(types)
}

func (m *OutMsg) IdempotencyKey() string {
	if m.Ack == nil {
		return ""
	}
	return m.Ack.idempotencyKey
}
