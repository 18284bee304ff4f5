package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Limits of the publish outbox: client frames wait here while Redis is slow
// or down, and are dropped beyond them.
const (
	OutboxMaxMessages = 10000
	outboxMaxBytes    = 16 << 20
	OutboxMaxAge      = 10 * time.Second
	// PublishBatch caps the PUBLISHes sent in one pipeline (one round trip).
	PublishBatch = 512
	// publishTimeout bounds one pipeline.
	publishTimeout = 5 * time.Second
	// finalFlush bounds the last attempt to publish what is queued when the
	// broker shuts down.
	finalFlush = time.Second
	// roomWait is how long a client's reader waits for room in a full outbox
	// before its frame is dropped: publishers faster than Redis are slowed
	// down (TCP pushes back on them) rather than dropped.
	roomWait = time.Second
)

type OutMsg struct {
	Channel string
	data    []byte
	History *HistoryOptions // record it; nil: live
	// markedBinary: a binary frame whose bytes are valid UTF-8, which
	// Redis carries marked binary (markBinary).
	MarkedBinary bool
	At           time.Time
	Ack          *PublishAck // someone waits for the outcome; nil: nobody
	// onRefused, when set, is told that Redis refused the frame for its
	// sender to hear (too many new channels); a WebSocket client is closed.
	onRefused func(error)
}

// Outbox publishes client frames through one goroutine, pipelined, each
// channel's frames in the order they were queued, so every sender's frames
// keep their order.
type Outbox struct {
	client  redis.UniversalClient
	sharded bool // SPUBLISH, routed by slot, instead of PUBLISH
	ctx     context.Context
	table   *ChannelTable // of the broker: which channels it hears, and their history
	wake    chan struct{} // cap 1

	mu       sync.Mutex
	queue    []OutMsg
	bytes    int
	room     chan struct{} // closed (and replaced) when take makes room
	dropping bool          // frames are being dropped; logged once until it stops

	// known are channels Redis answered with a history, so that their
	// frames take nothing of a route's new_channels (run's goroutine only).
	known map[string]struct{}
}

// StartOutbox starts an outbox, whose goroutine is in wg (the broker's) and
// ends once ctx is done and what it held is flushed; sharded makes it
// SPUBLISH (cluster, sharded Pub/Sub) instead of PUBLISH. It publishes a
// channel's frames while the table's broker listens to the channel.
func StartOutbox(ctx context.Context, wg *sync.WaitGroup, client redis.UniversalClient, sharded bool, table *ChannelTable) *Outbox {
	o := &Outbox{client: client, sharded: sharded, ctx: ctx, table: table, wake: make(chan struct{}, 1), room: make(chan struct{}), known: make(map[string]struct{})}
	wg.Add(1)
	go func() {
		defer wg.Done()
		o.run()
	}()
	return o
}

// Add queues a frame, binary or text (binary false: text, or what its bytes
// say), recorded in the channel's history when hist is set, waiting up to
// roomWait while the outbox is full; false means the frame was dropped.
// ack, when set, is told the outcome, onRefused a refusal the sender must
// hear.
func (o *Outbox) Add(ch string, data []byte, binary bool, hist *HistoryOptions, ack *PublishAck, onRefused func(error)) bool {
	m := OutMsg{Channel: ch, data: data, History: hist, MarkedBinary: frame.MarkBinary(data, binary), Ack: ack, onRefused: onRefused}
	if hist == nil {
		m.data = frame.LiveWire(data, m.MarkedBinary)
	}
	var timeout <-chan time.Time
	o.mu.Lock()
	for len(o.queue) >= OutboxMaxMessages || o.bytes+len(m.data) > outboxMaxBytes {
		room := o.room
		o.mu.Unlock()
		if timeout == nil {
			timer := time.NewTimer(roomWait)
			defer timer.Stop()
			timeout = timer.C
		}
		select {
		case <-room:
			o.mu.Lock()
			continue
		case <-timeout:
		case <-o.ctx.Done():
		}
		o.mu.Lock()
		first := !o.dropping
		o.dropping = true
		o.mu.Unlock()
		Metrics.PublishDrops.WithLabelValues("outbox_full").Inc()
		if first {
			logger().Warn("publish outbox full; dropping client frames",
				zap.Int("max_messages", OutboxMaxMessages), zap.Int("max_bytes", outboxMaxBytes))
		}
		return false
	}
	o.dropping = false
	m.At = time.Now()
	o.queue = append(o.queue, m)
	o.bytes += len(m.data)
	o.mu.Unlock()
	signal(o.wake)
	return true
}

// take removes up to n frames from the queue, in order: the frames of the
// channels ready accepts (nil: all), asked once per channel, while the
// frames of the others stay queued in order; frames too old to be sent are
// taken too, for expire.
func (o *Outbox) take(n int, ready func(ch string) bool) []OutMsg {
	o.mu.Lock()
	defer o.mu.Unlock()
	cutoff := time.Now().Add(-OutboxMaxAge)
	batch := make([]OutMsg, 0, min(n, len(o.queue)))
	var asked map[string]bool // ready's answer for each channel met
	kept := o.queue[:0]
	for i, m := range o.queue {
		if len(batch) == n {
			kept = append(kept, o.queue[i:]...)
			break
		}
		if ready != nil && !m.At.Before(cutoff) {
			ok, known := asked[m.Channel]
			if !known {
				if asked == nil {
					asked = make(map[string]bool)
				}
				ok = ready(m.Channel)
				asked[m.Channel] = ok
			}
			if !ok {
				kept = append(kept, m)
				continue
			}
		}
		batch = append(batch, m)
		o.bytes -= len(m.data)
	}
	clear(o.queue[len(kept):]) // let the frames taken be collected
	o.queue = kept
	if len(o.queue) == 0 {
		o.queue = nil
	}
	if len(batch) > 0 {
		close(o.room)
		o.room = make(chan struct{})
	}
	return batch
}

// putBack queues frames to send again. The queue stays in the order the
// frames came (frames of a channel held meanwhile may be older), and so
// each channel's frames keep their order.
func (o *Outbox) putBack(frames []OutMsg) {
	if len(frames) == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.queue = append(frames[:len(frames):len(frames)], o.queue...)
	slices.SortStableFunc(o.queue, func(a, b OutMsg) int { return a.At.Compare(b.At) })
	for _, m := range frames {
		o.bytes += len(m.data)
	}
}

func (o *Outbox) run() {
	failing := false
	reloaded := false // the script was loaded for this try: no second time
	var retry backoff
	held := time.NewTimer(OutboxMaxAge) // frames held for a channel expire
	defer held.Stop()
	for {
		select {
		case <-o.wake:
		case <-o.table.heard: // frames held for a channel may go now
		case <-held.C:
		case <-o.ctx.Done():
			o.flush()
			return
		}
		// After an outage, a channel's frames go only once this node listens
		// to it again, so its own clients get what they sent meanwhile.
		for batch := o.take(PublishBatch, o.table.listening); len(batch) > 0; batch = o.take(PublishBatch, o.table.listening) {
			if batch = Expire(Claim(batch)); len(batch) == 0 {
				continue
			}
			ctx, cancel := context.WithTimeout(o.ctx, publishTimeout)
			again, err := o.send(ctx, batch)
			cancel()
			o.putBack(again)
			if errors.Is(err, errScriptLoaded) && !reloaded {
				reloaded = true
				continue
			}
			if err == nil {
				reloaded = false
				if failing {
					logger().Info("publishing to redis restored")
					failing = false
					retry.reset()
				}
				continue
			}
			Metrics.publishErrors.Inc()
			if !failing {
				logger().Warn("publishing to redis failed; holding client frames",
					zap.Int("held", len(again)), zap.Error(err))
				failing = true
			}
			// A cluster node's frames may fail while the others' go: wait
			// only when nothing went.
			if len(again) == len(batch) && !retry.Wait(o.ctx) {
				o.flush()
				return
			}
		}
		held.Reset(o.heldFor())
	}
}

// heldFor is how long until the oldest frame held in the queue expires.
func (o *Outbox) heldFor() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queue) == 0 {
		return OutboxMaxAge
	}
	return max(time.Until(o.queue[0].At.Add(OutboxMaxAge)), time.Millisecond)
}

// send publishes batch in one pipeline and returns the frames to send
// again, in their order, with the first error. On a cluster the commands of
// one node can fail while the others' succeed: only the runs that failed
// on the way are sent again (a waiting caller is told that Redis may have
// its frame, which is then not sent again), and those whose script Redis
// had lost (errScriptLoaded: it is loaded now). The others are done:
// published, or refused by Redis and dropped. Recorded frames go by runs of
// one channel, one script call each.
func (o *Outbox) send(ctx context.Context, batch []OutMsg) (again []OutMsg, err error) {
	runs := RecordRuns(batch)
	cmds, _ := o.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range runs {
			m := batch[r.start]
			switch {
			case m.History != nil:
				keys := HistoryKeys(m.Channel)
				if k := m.IdempotencyKey(); k != "" {
					keys = append(keys, k)
				}
				p.EvalSha(ctx, PublishScript.Hash(), keys, o.recordArgs(batch[r.start:r.end])...)
			case o.sharded:
				p.SPublish(ctx, m.Channel, m.data)
			default:
				p.Publish(ctx, m.Channel, m.data)
			}
		}
		return nil
	})
	noScript := false
	for i, c := range cmds {
		run := batch[runs[i].start:runs[i].end]
		cerr := c.Err()
		switch {
		case cerr == nil:
			o.acknowledge(run, c)
		case strings.HasPrefix(cerr.Error(), "NOSCRIPT"):
			// Redis lost its scripts (restart, failover): load it, and send
			// the run again.
			noScript = true
			again = append(again, run...)
		case refusal(cerr):
			for _, m := range run {
				if m.Ack != nil {
					m.Ack.resolve(frame.Position{}, false, fmt.Errorf("%w: %w", ErrRefused, cerr))
				}
			}
			Metrics.PublishDrops.WithLabelValues("refused").Add(float64(len(run)))
			warnPublishRefused.log([]zap.Field{zap.String("error", errorCode(cerr)), zap.Int("dropped", len(run))},
				zap.String("channel", run[0].Channel), zap.Error(cerr))
		default:
			if err == nil {
				err = cerr
			}
			if notSent(cerr) || transient(cerr) { // Redis did not take it
				for _, m := range run {
					if m.Ack != nil {
						m.Ack.release()
					}
				}
			} else {
				// Whoever waits is told now and does not see it sent later.
				run = unconfirmed(run, cerr)
			}
			again = append(again, run...)
		}
	}
	if noScript && err == nil {
		if lerr := PublishScript.Load(ctx, o.client).Err(); lerr != nil {
			return again, fmt.Errorf("loading the publish script: %w", lerr)
		}
		return again, errScriptLoaded
	}
	return again, err
}

// errScriptLoaded asks run to send again at once the runs whose script
// Redis had lost: it is loaded now.
var errScriptLoaded = errors.New("publish script loaded")

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

// Third elements of publish.lua's answer.
const (
	recordedBefore   = 1 // the idempotency key was used before: its position then
	keyReused        = 2 // the key was used for another payload: nothing published
	noNewChannelHere = 3 // no history yet, and none may be made: nothing published
)

// acknowledge tells the waiting callers of a published run where their
// frames went, or why they were not: publish.lua answers {epoch, last
// offset[, a third element]}.
func (o *Outbox) acknowledge(run []OutMsg, c redis.Cmder) {
	var last frame.Position
	var seen int64
	if run[0].History != nil {
		if reply, err := c.(*redis.Cmd).Slice(); err == nil && len(reply) >= 2 {
			last.Epoch, _ = reply[0].(string)
			last.Offset, _ = reply[1].(int64)
			if len(reply) > 2 {
				seen, _ = reply[2].(int64)
			}
		}
	}
	var refusal error
	switch seen {
	case keyReused:
		refusal = ErrKeyReused
	case noNewChannelHere:
		refusal = ErrNewChannels
		Metrics.PublishDrops.WithLabelValues("new_channels").Add(float64(len(run)))
	default:
		Metrics.published.Add(float64(len(run)))
		if last.Epoch != "" {
			o.learn(run[0].Channel)
		}
	}
	for i, m := range run {
		switch {
		case refusal != nil && m.Ack != nil:
			m.Ack.resolve(frame.Position{}, false, refusal)
		case refusal != nil && m.onRefused != nil:
			m.onRefused(refusal)
		case m.Ack != nil:
			pos := last
			if pos.Offset > 0 {
				pos.Offset -= int64(len(run) - 1 - i)
			}
			m.Ack.resolve(pos, seen == recordedBefore, nil)
		}
	}
}

// Claim drops the frames whose caller gave up waiting, and makes the others
// the outbox's to tell.
func Claim(batch []OutMsg) []OutMsg {
	return slices.DeleteFunc(batch, func(m OutMsg) bool { return m.Ack != nil && !m.Ack.Claim() })
}

// unconfirmed tells the callers waiting for frames of batch that a publish
// failed, and takes those frames out of the retry.
func unconfirmed(batch []OutMsg, err error) []OutMsg {
	return slices.DeleteFunc(batch, func(m OutMsg) bool {
		if m.Ack == nil {
			return false
		}
		m.Ack.resolve(frame.Position{}, false, fmt.Errorf("%w: %w", errUnconfirmed, err))
		return true
	})
}

// notSent tells whether a failed publish never reached Redis: no
// connection could be had. Its frames are sent again, and whoever waits for
// them may still give up.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" || errors.Is(err, redis.ErrPoolTimeout)
}

// refusal tells whether Redis refused a command for good: an error reply
// (e.g. NOPERM) that retrying will not change.
func refusal(err error) bool {
	var reply redis.Error
	return errors.As(err, &reply) && !transient(err)
}

// transient tells whether an error reply refuses a command only for now:
// a cluster without a master for some slots, a slot being moved, a replica
// still loading or not promoted yet. Its frames are sent again.
func transient(err error) bool {
	var reply redis.Error
	if !errors.As(err, &reply) {
		return false
	}
	msg := reply.Error()
	for _, prefix := range []string{"CLUSTERDOWN ", "TRYAGAIN ", "LOADING ", "MASTERDOWN ", "READONLY "} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// Expire drops the frames that waited longer than outboxMaxAge, and tells
// whoever waits for one of them. It runs after claim: a frame whose caller
// gave up is gone already, answered and counted by that caller.
func Expire(batch []OutMsg) []OutMsg {
	cutoff := time.Now().Add(-OutboxMaxAge)
	n := 0
	for n < len(batch) && batch[n].At.Before(cutoff) {
		if m := batch[n]; m.Ack != nil {
			m.Ack.resolve(frame.Position{}, false, ErrExpired)
		}
		n++
	}
	if n > 0 {
		Metrics.PublishDrops.WithLabelValues("expired").Add(float64(n))
		logger().Warn("client frames dropped after waiting for redis",
			zap.Int("dropped", n), zap.Duration("max_age", OutboxMaxAge))
	}
	return batch[n:]
}

// flush makes one bounded attempt to publish what is still queued when the
// broker shuts down.
func (o *Outbox) flush() {
	batch := Claim(o.take(OutboxMaxMessages, nil))
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), finalFlush)
	defer cancel()
	again, err := o.send(ctx, batch)
	if errors.Is(err, errScriptLoaded) {
		again, err = o.send(ctx, again)
	}
	if err != nil {
		unconfirmed(again, err)
		logger().Warn("client frames not published at shutdown", zap.Int("dropped", len(again)), zap.Error(err))
	}
}
