package bus

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
)

// PublishAck is the outcome of a publish that a caller waits for (a POST):
// the outbox tells it once Redis took the message, or why not. Its caller
// may give up first (abandon); the outbox then never sends the message, so
// nothing is published behind the caller's back.
type PublishAck struct {
	idempotencyKey string // the Redis key that records it once (idempotencyKey()); "" for none
	State          atomic.Int32
	Done           chan struct{} // closed when pos, duplicate and err are set

	Pos       frame.Position // where a recorded message went; zero for a live one
	Duplicate bool           // the key was used before: pos is what it got then
	Err       error
}

const (
	AckWaiting   = iota // queued; the caller may still abandon it
	AckSending          // the outbox sends it: it will tell the outcome
	ackAbandoned        // the caller gave up: it is not sent
)

var (
	// ErrRefused: Redis answered the publish with an error.
	ErrRefused = errors.New("redis refused the message")
	// ErrKeyReused: the Idempotency-Key was used, within its 5 minutes, for
	// another message; nothing was published.
	ErrKeyReused = errors.New("the idempotency key was used for another message")
	// ErrNewChannels: the channel has no history yet, and its route may give
	// no more channels one now (new_channels); nothing was published.
	ErrNewChannels = errors.New("too many new channels")
	// errUnconfirmed: the publish failed on its way, so Redis may or may not
	// have taken it.
	errUnconfirmed = errors.New("redis did not confirm the message")
	// ErrExpired: the message waited in the outbox longer than it keeps
	// frames, and was not sent.
	ErrExpired = errors.New("the message waited too long for redis and was not published")
)

func NewPublishAck(idempotencyKey string) *PublishAck {
	return &PublishAck{idempotencyKey: idempotencyKey, Done: make(chan struct{})}
}

// Claim is the outbox taking the message to send; false: it was abandoned.
func (a *PublishAck) Claim() bool {
	return a.State.CompareAndSwap(AckWaiting, AckSending) || a.State.Load() == AckSending
}

// release gives the message back to its caller after an attempt that never
// reached Redis: it may abandon it again until the next attempt claims it.
func (a *PublishAck) release() { a.State.CompareAndSwap(AckSending, AckWaiting) }

// Abandon is the caller giving up; false: the message is being sent, and
// the caller must wait for done.
func (a *PublishAck) Abandon() bool {
	return a.State.CompareAndSwap(AckWaiting, ackAbandoned)
}

func (a *PublishAck) resolve(pos frame.Position, duplicate bool, err error) {
	a.Pos, a.Duplicate, a.Err = pos, duplicate, err
	close(a.Done)
}

// ErrGaveUp is Wait's error when the timeout passed before the outbox took
// the message: it was abandoned, and is not published.
var ErrGaveUp = errors.New("gave up waiting for redis; the message was not published")

// Wait waits for the outcome, within timeout or until ctx is done; then it
// abandons a message the outbox has not taken yet, and returns ErrGaveUp or
// ctx's error: nothing was published. Otherwise the outcome is in Pos,
// Duplicate and Err (a message already on its way is waited for: its
// outcome comes within the outbox's publish timeout).
func (a *PublishAck) Wait(ctx context.Context, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var gaveUp error
	select {
	case <-a.Done:
		return nil
	case <-timer.C:
		gaveUp = ErrGaveUp
	case <-ctx.Done():
		gaveUp = ctx.Err()
	}
	if a.Abandon() {
		return gaveUp
	}
	<-a.Done
	return nil
}
