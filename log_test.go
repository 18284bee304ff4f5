package redisws

import (
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
)

// A limited warning goes out at most once per warnInterval, and the next
// one that goes out counts those held back meanwhile.
func TestLimitedWarningAllow(t *testing.T) {
	var w bus.LimitedWarning
	t0 := time.Now()
	for _, step := range []struct {
		at   time.Duration
		ok   bool
		held int
	}{
		{0, true, 0},
		{time.Second, false, 0},
		{bus.WarnInterval - time.Millisecond, false, 0},
		{bus.WarnInterval, true, 2},
		{bus.WarnInterval + time.Second, false, 0},
		{3 * bus.WarnInterval, true, 1},
		{3*bus.WarnInterval + time.Second, false, 0},
	} {
		if held, ok := w.Allow(t0.Add(step.at)); ok != step.ok || held != step.held {
			t.Fatalf("at %s: allowed %v with %d held back, want %v with %d", step.at, ok, held, step.ok, step.held)
		}
	}
}
