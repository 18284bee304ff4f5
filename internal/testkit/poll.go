package testkit

import (
	"testing"
	"time"
)

// Wait is the deadline of every poll and receive of the tests.
const Wait = 20 * time.Second

// Eventually polls cond every 20ms until it returns true or timeout elapses;
// then it fails the test with the given message.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("eventually (after %s): "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
