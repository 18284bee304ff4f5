package bus

// One batch of the outbox to Redis: the pipeline, what is sent again after
// a failure, and the last flush at shutdown.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

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
