package bus

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
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

// Third elements of publish.lua's answer.
const (
	recordedBefore   = 1 // the idempotency key was used before: its position then
	keyReused        = 2 // the key was used for another payload: nothing published
	noNewChannelHere = 3 // no history yet, and none may be made: nothing published
)
