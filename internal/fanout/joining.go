package fanout

import (
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
)

// joining holds the live frames of a channel a started client is joining,
// until its opening frames are queued: they must come first.
type joining struct {
	ch     string // the channel joined; its presence events channel shares it
	frames []*frame.Frame
	bytes  int
}

// beginJoin makes the live frames of names (a channel, and its presence
// events channel) wait. The hub's mu held.
func (c *Client) beginJoin(names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.joining == nil {
		c.joining = make(map[string]*joining)
	}
	j := &joining{ch: names[0]}
	for _, n := range names {
		c.joining[n] = j
	}
}

// hold keeps f when its channel is being joined; a client whose held and
// queued frames pass its limit is closed as too slow. c.mu held.
func (c *Client) hold(f *frame.Frame) bool {
	if f.Msg == nil {
		return false
	}
	j := c.joining[f.Msg.Channel]
	if j == nil {
		return false
	}
	if c.queued+j.bytes+f.Size > c.maxQueue && j.bytes > 0 {
		c.tooSlow(len(c.queue) + len(j.frames) + 1)
		return true
	}
	j.frames = append(j.frames, f)
	j.bytes += f.Size
	return true
}

// FinishJoin queues the opening frames of ch (its subscribed frame, its
// replay), then the live frames held since Join, less those up to upTo
// (when set: the last offset the opening frames give or tell of, as in
// Prepend). Unlike Prepend's, the opening frames count against the queue's
// limit: a connection joins channels while it runs, and what it has not
// read of one replay is what the next may not hold (see Room).
func (c *Client) FinishJoin(ch string, frames []*frame.Frame, upTo *frame.Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var held []*frame.Frame
	for n, j := range c.joining {
		if j.ch == ch {
			held = append(held, j.frames...) // one list shared by its names
			delete(c.joining, n)
			j.frames = nil
		}
	}
	if len(c.joining) == 0 {
		c.joining = nil // Enqueue looks no more
	}
	if c.closing {
		return
	}
	if upTo != nil {
		if c.seen == nil {
			c.seen = make(map[string]frame.Position)
		}
		c.seen[ch] = *upTo
	}
	c.queue = append(c.queue, frames...)
	for _, f := range frames {
		c.queued += f.Size // counted, unlike an admission's prepended replay: live messages wait behind it
	}
	for _, f := range held {
		if !c.replayed(f.Msg) {
			c.queue = append(c.queue, f)
			c.queued += f.Size
		}
	}
	c.kick()
}

// forget drops what c keeps about ch after it left it. The hub's mu held.
func (c *Client) forget(ch string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for n, j := range c.joining {
		if j.ch == ch {
			delete(c.joining, n)
		}
	}
	if len(c.joining) == 0 {
		c.joining = nil
	}
	delete(c.seen, ch)
}

// firstHeld is FirstQueued for a channel being joined: the offset of its
// first held recorded message in epoch, or 0; ok false when ch is not being
// joined. c.mu held.
func (c *Client) firstHeld(ch, epoch string) (first int64, ok bool) {
	j := c.joining[ch]
	if j == nil {
		return 0, false
	}
	for _, f := range j.frames {
		if m := f.Msg; m != nil && m.Channel == ch && m.Recorded() && m.Pos.Epoch == epoch {
			return m.Pos.Offset, true
		}
	}
	return 0, true
}

// Room is how many more bytes the client's queue takes before it is too
// slow: what a run-time replay may still hold.
func (c *Client) Room() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return max(c.maxQueue-c.queued, 0)
}
