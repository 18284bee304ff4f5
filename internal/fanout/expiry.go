package fanout

import "time"

// ExpireAt closes the connection at t with closeTokenExpired: when the
// token that authenticated it expires. A later call moves the time (a
// refreshed token); the zero time keeps the connection open. One timer per
// client, and no goroutine until it fires.
func (c *Client) ExpireAt(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.expires = t
	switch {
	case c.expiry != nil && t.IsZero():
		c.expiry.Stop()
	case c.expiry != nil:
		c.expiry.Reset(time.Until(t))
	case !t.IsZero():
		c.expiry = time.AfterFunc(time.Until(t), c.expire)
	}
}

// expire is the expiry timer's: a timer that fired just as ExpireAt moved
// the time later finds it not due yet.
func (c *Client) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.expires.IsZero() && !time.Now().Before(c.expires) {
		c.closeLocked(closeTokenExpired, "token expired")
	}
}
