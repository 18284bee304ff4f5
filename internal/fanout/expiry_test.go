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
