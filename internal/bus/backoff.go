package bus

import (
	"context"
	"math/rand/v2"
	"time"
)

// Bounds of the retry backoff towards Redis.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// backoff is a capped exponential backoff with full jitter: each wait is
// picked between minBackoff and minBackoff plus a ceiling that doubles at
// every attempt up to maxBackoff, so a fleet of nodes that lost Redis at
// the same moment does not come back in step. The zero value is ready.
type backoff struct{ ceiling time.Duration }

func (b *backoff) reset() { b.ceiling = 0 }

// Wait sleeps for the next delay; false means ctx ended first.
func (b *backoff) Wait(ctx context.Context) bool {
	b.ceiling = max(b.ceiling, minBackoff)
	d := time.Duration(rand.Int64N(int64(b.ceiling))) + minBackoff
	b.ceiling = min(2*b.ceiling, maxBackoff)
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
