package redisws

import (
	"errors"
	"sync/atomic"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
)

// publishAck is the outcome of a publish that a caller waits for (a POST):
// the outbox tells it once Redis took the message, or why not. Its caller
// may give up first (abandon); the outbox then never sends the message, so
// nothing is published behind the caller's back.
type publishAck struct {
	idempotencyKey string // the Redis key that records it once (idempotencyKey()); "" for none
	state          atomic.Int32
	done           chan struct{} // closed when pos, duplicate and err are set

	pos       frame.Position // where a recorded message went; zero for a live one
	duplicate bool           // the key was used before: pos is what it got then
	err       error
}

const (
	ackWaiting   = iota // queued; the caller may still abandon it
	ackSending          // the outbox sends it: it will tell the outcome
	ackAbandoned        // the caller gave up: it is not sent
)

var (
	// errRefused: Redis answered the publish with an error.
	errRefused = errors.New("redis refused the message")
	// errKeyReused: the Idempotency-Key was used, within its 5 minutes, for
	// another message; nothing was published.
	errKeyReused = errors.New("the idempotency key was used for another message")
	// errNewChannels: the channel has no history yet, and its route may give
	// no more channels one now (new_channels); nothing was published.
	errNewChannels = errors.New("too many new channels")
	// errUnconfirmed: the publish failed on its way, so Redis may or may not
	// have taken it.
	errUnconfirmed = errors.New("redis did not confirm the message")
	// errExpired: the message waited in the outbox longer than it keeps
	// frames, and was not sent.
	errExpired = errors.New("the message waited too long for redis and was not published")
)

func newPublishAck(idempotencyKey string) *publishAck {
	return &publishAck{idempotencyKey: idempotencyKey, done: make(chan struct{})}
}

// claim is the outbox taking the message to send; false: it was abandoned.
func (a *publishAck) claim() bool {
	return a.state.CompareAndSwap(ackWaiting, ackSending) || a.state.Load() == ackSending
}

// release gives the message back to its caller after an attempt that never
// reached Redis: it may abandon it again until the next attempt claims it.
func (a *publishAck) release() { a.state.CompareAndSwap(ackSending, ackWaiting) }

// abandon is the caller giving up; false: the message is being sent, and
// the caller must wait for done.
func (a *publishAck) abandon() bool {
	return a.state.CompareAndSwap(ackWaiting, ackAbandoned)
}

func (a *publishAck) resolve(pos frame.Position, duplicate bool, err error) {
	a.pos, a.duplicate, a.err = pos, duplicate, err
	close(a.done)
}
