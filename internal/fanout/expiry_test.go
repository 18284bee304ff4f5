package fanout

import (
	"testing"
	"time"
)

// waitCode polls c's close code until it is want or the deadline passes.
func waitCode(t *testing.T, c *Client, want int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); c.CloseCode() != want; {
		if time.Now().After(deadline) {
			t.Fatalf("close code %d; want %d", c.CloseCode(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A client closes with 4003 when its token expires; a time moved later
// (a refreshed token) or cleared keeps it open past the first one.
func TestClientExpireAt(t *testing.T) {
	c := testClient("a")
	c.ExpireAt(time.Now().Add(20 * time.Millisecond))
	waitCode(t, c, closeTokenExpired)

	moved, cleared := testClient("a"), testClient("a")
	moved.ExpireAt(time.Now().Add(20 * time.Millisecond))
	moved.ExpireAt(time.Now().Add(time.Hour))
	cleared.ExpireAt(time.Now().Add(20 * time.Millisecond))
	cleared.ExpireAt(time.Time{})
	sentinel := testClient("a") // expires after both first times passed
	sentinel.ExpireAt(time.Now().Add(100 * time.Millisecond))
	waitCode(t, sentinel, closeTokenExpired)
	if moved.CloseCode() != 0 || cleared.CloseCode() != 0 {
		t.Fatalf("close codes %d (moved), %d (cleared); want 0, 0", moved.CloseCode(), cleared.CloseCode())
	}
}

// A wake-up runs once at its time, on the connection's one timer: beside a
// later connection expiry it runs and leaves that expiry armed; moved later
// or cancelled it does not run at the first time; a connection that
// expires first, or is closed, never runs it.
func TestClientWakeAt(t *testing.T) {
	woke := make(chan string, 8)
	wakeAt := func(c *Client, name string, d time.Duration) {
		c.WakeAt(time.Now().Add(d), func() { woke <- name })
	}
	first := testClient("a")
	first.ExpireAt(time.Now().Add(150 * time.Millisecond))
	wakeAt(first, "first", 20*time.Millisecond)
	moved, cancelled, expired, closed := testClient("a"), testClient("a"), testClient("a"), testClient("a")
	wakeAt(moved, "moved early", 20*time.Millisecond)
	wakeAt(moved, "moved", time.Hour)
	wakeAt(cancelled, "cancelled", 20*time.Millisecond)
	cancelled.WakeAt(time.Time{}, nil)
	expired.ExpireAt(time.Now().Add(10 * time.Millisecond))
	wakeAt(expired, "after the expiry", 50*time.Millisecond)
	wakeAt(closed, "closed", 20*time.Millisecond)
	closed.Close(1000, "")
	if got := <-woke; got != "first" {
		t.Fatalf("woke %q first; want first", got)
	}
	waitCode(t, first, closeTokenExpired) // its expiry stayed armed
	waitCode(t, expired, closeTokenExpired)
	sentinel := testClient("a") // wakes after every other time passed
	wakeAt(sentinel, "sentinel", 100*time.Millisecond)
	if got := <-woke; got != "sentinel" {
		t.Fatalf("woke %q; want only first and sentinel", got)
	}
	for _, c := range []*Client{moved, cancelled} {
		if c.CloseCode() != 0 {
			t.Fatalf("close code %d; a wake-up closes nothing", c.CloseCode())
		}
	}
}
