package redisws

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
)

// hub is one handler instance's set of local clients, by channel. It joins
// its broker's channel table for a channel when its first client of that
// channel arrives and leaves when the last one goes, and fans every Redis
// message of the channel out to them.
type hub struct {
	table   *bus.ChannelTable
	release func() // drops this hub's reference to the broker; called once
	opts    hubOptions
	active  atomic.Int64

	mu       sync.RWMutex
	channels map[string]map[*client]struct{}
	static   map[string]bool // joined for the hub's whole life
	clients  map[*client]struct{}
	retired  bool          // the config that made this hub is unloaded
	empty    chan struct{} // closed when retired with no clients left
	released bool
}

// hubOptions are the settings of the handler that a hub applies.
type hubOptions struct {
	maxClients int                  // max_connections; 0: no limit
	closeOnGap bool                 // gap_policy close
	history    *bus.HistoryOptions  // nil: none
	presence   *bus.PresenceOptions // nil: none
	tracker    *bus.PresenceTracker // with presence: the broker's
}

func newHub(table *bus.ChannelTable, release func(), opts hubOptions) *hub {
	return &hub{
		table:    table,
		release:  release,
		opts:     opts,
		channels: make(map[string]map[*client]struct{}),
		static:   make(map[string]bool),
		clients:  make(map[*client]struct{}),
		empty:    make(chan struct{}),
	}
}

// subscribeStatic keeps ch subscribed for the hub's life, so that no message
// is missed between two clients.
func (h *hub) subscribeStatic(ch string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.static[ch] {
		return
	}
	h.static[ch] = true
	if h.channels[ch] == nil {
		h.channels[ch] = make(map[*client]struct{})
		h.table.Join(ch, h, h.opts.history != nil)
	}
}

// add registers c for its channels, unless the hub already has maxClients;
// false means c was refused. The table is called under h.mu so that the
// joins and leaves of one channel reach it in order.
func (h *hub) Add(c *client) bool {
	if n := h.active.Add(1); h.opts.maxClients > 0 && n > int64(h.opts.maxClients) {
		h.active.Add(-1)
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients[c] = struct{}{}
	for _, ch := range c.channels {
		h.addTo(ch, c, "")
		if h.opts.presence == nil {
			continue
		}
		h.opts.tracker.Join(ch, c.user, h.opts.presence)
		if c.kind == frame.EnvelopeFrames {
			h.addTo(bus.PresenceEvents(ch), c, ch)
		}
	}
	return true
}

// addTo adds c to the clients of channel name, which is the presence events
// channel of events when that is set. h.mu held.
func (h *hub) addTo(name string, c *client, events string) {
	set := h.channels[name]
	if set == nil {
		set = make(map[*client]struct{})
		h.channels[name] = set
		if events == "" {
			h.table.Join(name, h, h.opts.history != nil)
		} else {
			h.table.JoinEvents(events, h)
		}
	}
	set[c] = struct{}{}
}

// removeFrom undoes addTo. h.mu held.
func (h *hub) removeFrom(name string, c *client) {
	set := h.channels[name]
	delete(set, c)
	if len(set) == 0 && !h.static[name] {
		delete(h.channels, name)
		h.table.Leave(name, h)
	}
}

// remove undoes add. When a retired hub loses its last client, it lets go of
// its channels and of the broker.
func (h *hub) remove(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	for _, ch := range c.channels {
		h.removeFrom(ch, c)
		if h.opts.presence == nil {
			continue
		}
		h.opts.tracker.Leave(ch, c.user)
		if c.kind == frame.EnvelopeFrames {
			h.removeFrom(bus.PresenceEvents(ch), c)
		}
	}
	done := h.retireDone()
	h.mu.Unlock()
	h.active.Add(-1)
	if done {
		h.release()
	}
}

// Deliver enqueues m to every client of its channel, as the frame of the
// client's kind. Enqueueing never blocks: a client whose queue is full is
// closed alone. Only the channel's fan-out worker calls it, which makes the
// message's frames once.
func (h *hub) Deliver(m *frame.Message) {
	h.mu.RLock()
	for c := range h.channels[m.Channel] {
		c.enqueue(m.FrameFor(c.kind))
	}
	h.mu.RUnlock()
}

// Gap closes the clients of ch, when the handler's gap_policy says so,
// because messages of ch may have been missed: they reconnect and reload
// their state.
func (h *hub) Gap(ch string) {
	if !h.opts.closeOnGap {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.channels[ch] {
		c.Close(closeGap, "messages may have been missed; reload state")
	}
}

// retire is called when the hub's config is unloaded. closeAfter < 0 keeps
// the clients until they leave; otherwise they are closed with code, spread
// evenly over closeAfter so that they do not all reconnect at once.
func (h *hub) retire(code int, reason string, closeAfter time.Duration) {
	h.mu.Lock()
	h.retired = true
	clients := make([]*client, 0, len(h.clients))
	for c := range h.clients {
		clients = append(clients, c)
	}
	done := h.retireDone()
	h.mu.Unlock()
	if done {
		h.release()
	}
	if closeAfter < 0 || len(clients) == 0 {
		return
	}
	if closeAfter == 0 || len(clients) == 1 {
		for _, c := range clients {
			c.Close(code, reason)
		}
		return
	}
	step := closeAfter / time.Duration(len(clients))
	go func() {
		timer := time.NewTimer(0)
		defer timer.Stop()
		for _, c := range clients {
			select {
			case <-timer.C:
			case <-h.empty: // everyone left already
				return
			}
			c.Close(code, reason)
			timer.Reset(step)
		}
	}()
}

// finished tells whether a retired hub has let go of everything.
func (h *hub) finished() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.released
}

// waitEmpty waits until a retired hub has no clients, or the timeout.
func (h *hub) waitEmpty(timeout time.Duration) {
	select {
	case <-h.empty:
	case <-time.After(timeout):
	}
}

// retireDone leaves every channel once a retired hub is empty, and reports
// whether the caller must now call h.release. It runs under h.mu; release must
// not, because destroying the broker waits for a dispatch that may be waiting
// for h.mu.
func (h *hub) retireDone() bool {
	if !h.retired || len(h.clients) > 0 || h.released {
		return false
	}
	h.released = true
	for ch := range h.channels {
		h.table.Leave(ch, h)
	}
	h.channels = nil
	close(h.empty)
	return true
}
