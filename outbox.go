package redisws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Limits of the publish outbox: client frames wait here while Redis is slow
// or down, and are dropped beyond them.
const (
	outboxMaxMessages = 10000
	outboxMaxBytes    = 16 << 20
	outboxMaxAge      = 10 * time.Second
	// publishBatch caps the PUBLISHes sent in one pipeline (one round trip).
	publishBatch = 512
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

type outMsg struct {
	channel string
	data    []byte
	history *History // record it; nil: live
	// markedBinary: a binary frame whose bytes are valid UTF-8, which
	// Redis carries marked binary (markBinary).
	markedBinary bool
	at           time.Time
	ack          *publishAck // someone waits for the outcome; nil: nobody
}

// outbox publishes client frames through one goroutine, pipelined, in the
// order they were queued, so every sender's frames keep their order.
type outbox struct {
	client  redis.UniversalClient
	sharded bool // SPUBLISH, routed by slot, instead of PUBLISH
	ctx     context.Context
	avail   *availability // of the broker's subscription
	done    chan struct{}
	wake    chan struct{} // cap 1

	mu       sync.Mutex
	queue    []outMsg
	bytes    int
	room     chan struct{} // closed (and replaced) when take makes room
	dropping bool          // frames are being dropped; logged once until it stops

	refusing bool // Redis refuses publishes; logged once until one succeeds (run's goroutine only)
}

// startOutbox starts an outbox; sharded makes it SPUBLISH (cluster, sharded
// Pub/Sub) instead of PUBLISH. It publishes while avail is up.
func startOutbox(ctx context.Context, client redis.UniversalClient, sharded bool, avail *availability) *outbox {
	o := &outbox{client: client, sharded: sharded, ctx: ctx, avail: avail, done: make(chan struct{}), wake: make(chan struct{}, 1), room: make(chan struct{})}
	go o.run()
	return o
}

func (o *outbox) wait() { <-o.done }

// add queues a frame, binary or text (binary false: text, or what its bytes
// say), recorded in the channel's history when hist is set, waiting up to
// roomWait while the outbox is full; false means the frame was dropped.
// ack, when set, is told the outcome.
func (o *outbox) add(ch string, data []byte, binary bool, hist *History, ack *publishAck) bool {
	m := outMsg{channel: ch, data: data, history: hist, markedBinary: markBinary(data, binary), ack: ack}
	if hist == nil {
		m.data = liveWire(data, m.markedBinary)
	}
	var timeout <-chan time.Time
	o.mu.Lock()
	for len(o.queue) >= outboxMaxMessages || o.bytes+len(m.data) > outboxMaxBytes {
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
		metrics.publishDrops.WithLabelValues("outbox_full").Inc()
		if first {
			logger().Warn("publish outbox full; dropping client frames",
				zap.Int("max_messages", outboxMaxMessages), zap.Int("max_bytes", outboxMaxBytes))
		}
		return false
	}
	o.dropping = false
	m.at = time.Now()
	o.queue = append(o.queue, m)
	o.bytes += len(m.data)
	o.mu.Unlock()
	signal(o.wake)
	return true
}

// take removes up to n frames from the head of the queue.
func (o *outbox) take(n int) []outMsg {
	o.mu.Lock()
	defer o.mu.Unlock()
	n = min(n, len(o.queue))
	batch := make([]outMsg, n)
	copy(batch, o.queue)
	clear(o.queue[:n]) // let the sent frames be collected
	o.queue = o.queue[n:]
	for _, m := range batch {
		o.bytes -= len(m.data)
	}
	if len(o.queue) == 0 {
		o.queue = nil
	}
	if n > 0 {
		close(o.room)
		o.room = make(chan struct{})
	}
	return batch
}

func (o *outbox) run() {
	defer close(o.done)
	failing := false
	reloaded := false // the script was loaded for this try: no second time
	var retry backoff
	for {
		select {
		case <-o.wake:
		case <-o.ctx.Done():
			o.flush()
			return
		}
		for batch := o.take(publishBatch); len(batch) > 0; batch = o.take(publishBatch) {
			for len(batch) > 0 {
				// After an outage, publish only once this node listens again,
				// so its own clients get what they sent meanwhile.
				select {
				case <-o.avail.whenUp():
				case <-o.ctx.Done():
					o.flush()
					return
				}
				if batch = claim(expire(batch)); len(batch) == 0 {
					break
				}
				ctx, cancel := context.WithTimeout(o.ctx, publishTimeout)
				n, err := o.send(ctx, batch)
				cancel()
				batch = batch[n:]
				if errors.Is(err, errScriptLoaded) && !reloaded {
					reloaded = true
					continue
				}
				switch {
				case err != nil && notSent(err):
					for _, m := range batch {
						if m.ack != nil {
							m.ack.release()
						}
					}
				case err != nil:
					// Whoever waits is told now and does not see it sent later.
					batch = unconfirmed(batch, err)
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
				metrics.publishErrors.Inc()
				if !failing {
					logger().Warn("publishing to redis failed; holding client frames",
						zap.Int("held", len(batch)), zap.Error(err))
					failing = true
				}
				if !retry.wait(o.ctx) {
					o.flush()
					return
				}
			}
		}
	}
}

// send publishes batch in one pipeline and returns how many frames are done
// (published, or refused by Redis and dropped) before the first one to
// retry. Recorded frames go by runs of one channel, one script call each.
func (o *outbox) send(ctx context.Context, batch []outMsg) (int, error) {
	runs := recordRuns(batch)
	cmds, _ := o.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range runs {
			m := batch[r.start]
			switch {
			case m.history != nil:
				keys := historyKeys(m.channel)
				if k := m.idempotencyKey(); k != "" {
					keys = append(keys, idempotencyKey(m.channel, k))
				}
				p.EvalSha(ctx, publishScript.Hash(), keys, o.recordArgs(batch[r.start:r.end])...)
			case o.sharded:
				p.SPublish(ctx, m.channel, m.data)
			default:
				p.Publish(ctx, m.channel, m.data)
			}
		}
		return nil
	})
	for i, c := range cmds {
		r := runs[i]
		err := c.Err()
		if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			// Redis lost its scripts (restart, failover): load it, and send
			// again from here.
			if lerr := publishScript.Load(ctx, o.client).Err(); lerr != nil {
				return r.start, fmt.Errorf("loading the publish script: %w", lerr)
			}
			return r.start, errScriptLoaded
		}
		if err == nil {
			o.refusing = false
			metrics.published.Add(float64(r.end - r.start))
			acknowledge(batch[r.start:r.end], c)
			continue
		}
		var refused redis.Error
		if errors.As(err, &refused) { // an error reply (e.g. NOPERM): retrying will not help
			for _, m := range batch[r.start:r.end] {
				if m.ack != nil {
					m.ack.resolve(position{}, false, fmt.Errorf("%w: %w", errRefused, err))
				}
			}
			metrics.publishDrops.WithLabelValues("refused").Add(float64(r.end - r.start))
			if !o.refusing { // once until a publish goes through: no line per frame
				logger().Warn("redis refused a publish; frame dropped",
					zap.String("channel", batch[r.start].channel), zap.Error(err))
				o.refusing = true
			}
			continue
		}
		return r.start, err
	}
	return len(batch), nil
}

// errScriptLoaded asks run to send the rest of a batch again at once.
var errScriptLoaded = errors.New("publish script loaded")

// maxRecordRun caps the recorded frames of one script call, which holds
// Redis for its whole run.
const maxRecordRun = 64

// sendRun is batch[start:end]: one live frame, or recorded frames of one
// channel.
type sendRun struct{ start, end int }

func recordRuns(batch []outMsg) []sendRun {
	runs := make([]sendRun, 0, len(batch))
	for i, m := range batch {
		// A frame with an idempotency key is a run of its own: the script
		// checks the key for the whole run.
		if n := len(runs); n > 0 && m.history != nil && m.idempotencyKey() == "" {
			last := &runs[n-1]
			first := batch[last.start]
			if first.history == m.history && first.channel == m.channel && first.idempotencyKey() == "" && last.end-last.start < maxRecordRun {
				last.end = i + 1
				continue
			}
		}
		runs = append(runs, sendRun{i, i + 1})
	}
	return runs
}

// recordArgs are publish.lua's arguments for a run of frames: channel,
// size, TTLs, sharded, the floor epoch and offset (none here), the types,
// the payloads.
func (o *outbox) recordArgs(run []outMsg) []any {
	h := run[0].history
	sharded := "0"
	if o.sharded {
		sharded = "1"
	}
	args := make([]any, 0, 8+len(run))
	args = append(args, run[0].channel, h.Size, h.ttl().Milliseconds(), h.metaTTL().Milliseconds(), sharded, "", "0", recordTypes(run))
	for _, m := range run {
		args = append(args, m.data)
	}
	return args
}

// recordTypes is publish.lua's types argument: "" when no frame of the run
// is marked binary, else one character per frame, b (binary) or t (text,
// or what its bytes say).
func recordTypes(run []outMsg) string {
	if !slices.ContainsFunc(run, func(m outMsg) bool { return m.markedBinary }) {
		return ""
	}
	types := make([]byte, len(run))
	for i, m := range run {
		types[i] = 't'
		if m.markedBinary {
			types[i] = 'b'
		}
	}
	return string(types)
}

func (m *outMsg) idempotencyKey() string {
	if m.ack == nil {
		return ""
	}
	return m.ack.idempotencyKey
}

// acknowledge tells the waiting callers of a published run where their
// frames went: publish.lua answers {epoch, last offset[, 1 when the
// idempotency key was used before]}.
func acknowledge(run []outMsg, c redis.Cmder) {
	var last position
	duplicate := false
	if run[0].history != nil {
		if reply, err := c.(*redis.Cmd).Slice(); err == nil && len(reply) >= 2 {
			last.epoch, _ = reply[0].(string)
			last.offset, _ = reply[1].(int64)
			duplicate = len(reply) > 2
		}
	}
	for i, m := range run {
		if m.ack == nil {
			continue
		}
		pos := last
		if pos.offset > 0 {
			pos.offset -= int64(len(run) - 1 - i)
		}
		m.ack.resolve(pos, duplicate, nil)
	}
}

// claim drops the frames whose caller gave up waiting, and makes the others
// the outbox's to tell.
func claim(batch []outMsg) []outMsg {
	return slices.DeleteFunc(batch, func(m outMsg) bool { return m.ack != nil && !m.ack.claim() })
}

// unconfirmed tells the callers waiting for frames of batch that a publish
// failed, and takes those frames out of the retry.
func unconfirmed(batch []outMsg, err error) []outMsg {
	return slices.DeleteFunc(batch, func(m outMsg) bool {
		if m.ack == nil {
			return false
		}
		m.ack.resolve(position{}, false, fmt.Errorf("%w: %w", errUnconfirmed, err))
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

// expire drops the frames that waited longer than outboxMaxAge.
func expire(batch []outMsg) []outMsg {
	cutoff := time.Now().Add(-outboxMaxAge)
	n := 0
	for n < len(batch) && batch[n].at.Before(cutoff) {
		n++
	}
	if n > 0 {
		metrics.publishDrops.WithLabelValues("expired").Add(float64(n))
		logger().Warn("client frames dropped after waiting for redis",
			zap.Int("dropped", n), zap.Duration("max_age", outboxMaxAge))
	}
	return batch[n:]
}

// flush makes one bounded attempt to publish what is still queued when the
// broker shuts down.
func (o *outbox) flush() {
	batch := claim(o.take(outboxMaxMessages))
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), finalFlush)
	defer cancel()
	n, err := o.send(ctx, batch)
	if errors.Is(err, errScriptLoaded) {
		batch = batch[n:]
		n, err = o.send(ctx, batch)
	}
	if err != nil {
		unconfirmed(batch[n:], err)
		logger().Warn("client frames not published at shutdown", zap.Int("dropped", len(batch)-n), zap.Error(err))
	}
}
