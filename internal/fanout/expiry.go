package fanout

import "time"

// One timer per client serves two deadlines: the connection's (ExpireAt,
// its token's exp) and the adapter's next wake-up (WakeAt, the earliest
// exp of the channels it granted by their own tokens). It fires at the
// earlier; no goroutine runs until it does.

// ExpireAt closes the connection at t with closeTokenExpired: when the
// token that authenticated it expires. A later call moves the time (a
// refreshed token); the zero time keeps the connection open.
func (c *Client) ExpireAt(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.expires = t
	c.armLocked()
}

// WakeAt calls wake at t, once, unless the connection ended first; a later
// call replaces both, the zero time cancels. wake runs on the timer's
// goroutine, without c.mu.
func (c *Client) WakeAt(t time.Time, wake func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.wakeAt, c.wake = t, wake
	c.armLocked()
}

// armLocked sets the timer to the earlier of the two deadlines, or stops
// it when there is none. c.mu held.
func (c *Client) armLocked() {
	next := c.expires
	if next.IsZero() || !c.wakeAt.IsZero() && c.wakeAt.Before(next) {
		next = c.wakeAt
	}
	switch {
	case next.IsZero():
		if c.expiry != nil {
			c.expiry.Stop()
		}
	case c.expiry != nil:
		c.expiry.Reset(time.Until(next))
	default:
		c.expiry = time.AfterFunc(time.Until(next), c.fire)
	}
}

// fire is the timer's: it closes a connection whose token expired, else
// runs a wake-up that is due. A timer that fired just as a deadline moved
// later finds nothing due.
func (c *Client) fire() {
	c.mu.Lock()
	now := time.Now()
	if c.closing {
		c.mu.Unlock()
		return
	}
	if !c.expires.IsZero() && !now.Before(c.expires) {
		c.closeLocked(closeTokenExpired, "token expired")
		c.mu.Unlock()
		return
	}
	var wake func()
	if !c.wakeAt.IsZero() && !now.Before(c.wakeAt) {
		wake = c.wake
		c.wakeAt, c.wake = time.Time{}, nil
		c.armLocked()
	}
	c.mu.Unlock()
	if wake != nil {
		wake()
	}
}
