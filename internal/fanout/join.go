package fanout

import (
	"errors"
	"slices"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
)

// A connection joins and leaves channels over its life (a command client's
// subscribe and unsubscribe). Joining keeps what admit gives a new client:
// the channel's live messages, from the moment the hub delivers them to it,
// wait in the client's joining list until FinishJoin queues the channel's
// opening frames and replay; then they follow, less what the replay held.

var (
	// ErrAlreadySubscribed: Join of a channel the client has.
	ErrAlreadySubscribed = errors.New("already subscribed to this channel")
	// ErrNotSubscribed: Leave of a channel the client has not.
	ErrNotSubscribed = errors.New("not subscribed to this channel")
	// ErrTooManyChannels: the client holds maxChannels already.
	ErrTooManyChannels = errors.New("the connection holds the most channels it may")
)

// Join subscribes c to ch, unless c has it or holds maxChannels (0: no
// limit). Its messages wait until FinishJoin, or Leave. The cost does not
// grow with the channels c holds.
func (h *Hub) Join(c *Client, ch string, maxChannels int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.has(ch) {
		return ErrAlreadySubscribed
	}
	if maxChannels > 0 && len(c.Channels)+len(c.extra) >= maxChannels {
		return ErrTooManyChannels
	}
	if c.extra == nil {
		c.extra = make(map[string]struct{})
	}
	c.extra[ch] = struct{}{}
	names := []string{ch}
	if h.opts.Presence != nil && c.Kind == frame.EnvelopeFrames {
		names = append(names, bus.PresenceEvents(ch))
	}
	c.beginJoin(names)
	h.joinChannel(c, ch)
	return nil
}

// Leave ends c's subscription to ch, one of its own or one it joined: the
// hub delivers it nothing of ch after Leave returns.
func (h *Hub) Leave(c *Client, ch string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := c.extra[ch]; ok {
		delete(c.extra, ch)
	} else if i := slices.Index(c.Channels, ch); i >= 0 {
		c.Channels = slices.Delete(c.Channels, i, i+1)
	} else {
		return ErrNotSubscribed
	}
	h.leaveChannel(c, ch)
	c.forget(ch)
	return nil
}

// joinChannel adds c to ch, and to its presence. h.mu held.
func (h *Hub) joinChannel(c *Client, ch string) {
	h.addTo(ch, c, "")
	if h.opts.Presence == nil {
		return
	}
	h.opts.Tracker.Join(ch, c.User, h.opts.Presence)
	if c.Kind == frame.EnvelopeFrames {
		h.addTo(bus.PresenceEvents(ch), c, ch)
	}
}

// leaveChannel undoes joinChannel. h.mu held.
func (h *Hub) leaveChannel(c *Client, ch string) {
	h.removeFrom(ch, c)
	if h.opts.Presence == nil {
		return
	}
	h.opts.Tracker.Leave(ch, c.User)
	if c.Kind == frame.EnvelopeFrames {
		h.removeFrom(bus.PresenceEvents(ch), c)
	}
}

// has tells whether c follows ch. The hub's mu held.
func (c *Client) has(ch string) bool {
	_, ok := c.extra[ch]
	return ok || slices.Contains(c.Channels, ch)
}

// ChannelCount is how many channels c follows.
func (h *Hub) ChannelCount(c *Client) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(c.Channels) + len(c.extra)
}
