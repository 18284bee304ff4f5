package bus

import (
	"context"
	"errors"
	"slices"
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
