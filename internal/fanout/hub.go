package fanout

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
)

// Hub is one handler instance's set of local clients, by channel. It joins
// its broker's channel table for a channel when its first client of that
// channel arrives and leaves when the last one goes, and fans every Redis
// message of the channel out to them.
type Hub struct {
	table   *bus.ChannelTable
	release func() // drops this hub's reference to the broker; called once
	opts    HubOptions
	active  atomic.Int64

	mu       sync.RWMutex
	channels map[string]map[*Client]struct{}
	static   map[string]bool // joined for the hub's whole life
	clients  map[*Client]struct{}
	retired  bool          // the config that made this hub is unloaded
	empty    chan struct{} // closed when retired with no clients left
	released bool

	// Retire's closes spread over time run in a goroutine the hub owns (a
	// new spread stops the one before): Wait waits for them.
	spread     sync.WaitGroup
	stopSpread chan struct{} // closed to end the running spread; nil: none
	spreadCode int           // the close code of the running spread
	closedAll  bool          // closed at once: nothing spreads any more
}

// HubOptions are the settings of the handler that a hub applies.
type HubOptions struct {
	MaxClients int                  // max_connections; 0: no limit
	CloseOnGap bool                 // gap_policy close
	History    *bus.HistoryOptions  // nil: none
	Presence   *bus.PresenceOptions // nil: none
	Tracker    *bus.PresenceTracker // with presence: the broker's
}

func NewHub(table *bus.ChannelTable, release func(), opts HubOptions) *Hub {
	return &Hub{
		table:    table,
		release:  release,
		opts:     opts,
		channels: make(map[string]map[*Client]struct{}),
		static:   make(map[string]bool),
		clients:  make(map[*Client]struct{}),
		empty:    make(chan struct{}),
	}
}

// SubscribeStatic keeps ch subscribed for the hub's life, so that no message
// is missed between two clients.
func (h *Hub) SubscribeStatic(ch string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.static[ch] {
		return
	}
	h.static[ch] = true
	if h.channels[ch] == nil {
		h.channels[ch] = make(map[*Client]struct{})
		h.table.Join(ch, h, h.opts.History != nil)
	}
}

// Add registers c for its channels, unless the hub already has maxClients;
// false means c was refused. The table is called under h.mu so that the
// joins and leaves of one channel reach it in order.
func (h *Hub) Add(c *Client) bool {
	if n := h.active.Add(1); h.opts.MaxClients > 0 && n > int64(h.opts.MaxClients) {
		h.active.Add(-1)
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients[c] = struct{}{}
	for _, ch := range c.Channels {
		h.joinChannel(c, ch)
	}
	return true
}

// addTo adds c to the clients of channel name, which is the presence events
// channel of events when that is set. h.mu held.
func (h *Hub) addTo(name string, c *Client, events string) {
	set := h.channels[name]
	if set == nil {
		set = make(map[*Client]struct{})
		h.channels[name] = set
		if events == "" {
			h.table.Join(name, h, h.opts.History != nil)
		} else {
			h.table.JoinEvents(events, h)
		}
	}
	set[c] = struct{}{}
}

// removeFrom undoes addTo. h.mu held.
func (h *Hub) removeFrom(name string, c *Client) {
	set := h.channels[name]
	delete(set, c)
	if len(set) == 0 && !h.static[name] {
		delete(h.channels, name)
		h.table.Leave(name, h)
	}
}

// Remove undoes add. When a retired hub loses its last client, it lets go of
// its channels and of the broker.
func (h *Hub) Remove(c *Client) {
	h.mu.Lock()
	delete(h.clients, c)
	for _, ch := range c.Channels {
		h.leaveChannel(c, ch)
	}
	for ch := range c.extra {
		h.leaveChannel(c, ch)
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
func (h *Hub) Deliver(m *frame.Message) {
	h.mu.RLock()
	for c := range h.channels[m.Channel] {
		c.Enqueue(m.FrameFor(c.Kind))
	}
	h.mu.RUnlock()
}

// Gap closes the clients of ch, when the handler's gap_policy says so,
// because messages of ch may have been missed: they reconnect and reload
// their state.
func (h *Hub) Gap(ch string) {
	if !h.opts.CloseOnGap {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.channels[ch] {
		c.Close(CloseGap, "messages may have been missed; reload state")
	}
}

// Retire is called when the hub's config is unloaded or Caddy exits.
// closeAfter < 0 keeps the clients until they leave; otherwise they are
// closed with code, spread evenly over closeAfter so that they do not all
// reconnect at once. A later call replaces a running spread, except one with
// the same code and a delay (the exit path retires from the server's
// shutdown hook and from Cleanup: the drain must not restart). A delay of 0
// closes every client at once and ends any spread for good.
func (h *Hub) Retire(code int, reason string, closeAfter time.Duration) {
	h.mu.Lock()
	h.retired = true
	if closeAfter > 0 && h.stopSpread != nil && h.spreadCode == code {
		h.mu.Unlock()
		return
	}
	if h.stopSpread != nil && closeAfter >= 0 {
		close(h.stopSpread)
		h.stopSpread = nil
	}
	if closeAfter == 0 {
		h.closedAll = true
	}
	clients := make([]*Client, 0, len(h.clients))
	for c := range h.clients {
		clients = append(clients, c)
	}
	done := h.retireDone()
	var stop chan struct{}
	if closeAfter > 0 && len(clients) > 1 && !h.closedAll {
		stop = make(chan struct{})
		h.stopSpread, h.spreadCode = stop, code
		h.spread.Add(1)
	}
	h.mu.Unlock()
	if done {
		h.release()
	}
	switch {
	case closeAfter < 0:
	case stop != nil:
		go h.closeSpread(clients, code, reason, closeAfter/time.Duration(len(clients)), stop)
	default:
		for _, c := range clients {
			c.Close(code, reason)
		}
	}
}

// closeSpread closes clients one per step, until they are all closed, the
// hub is empty or stop is closed. The n-th close is due n steps after the
// start, however late the timer fires: a busy node closes what is due
// together, every spreadTick at most, and ends on time. A client that
// already left or is closing takes no slot: the others go at the same pace,
// and the spread ends sooner.
func (h *Hub) closeSpread(clients []*Client, code int, reason string, step time.Duration, stop chan struct{}) {
	defer h.spread.Done()
	defer func() {
		h.mu.Lock()
		if h.stopSpread == stop {
			h.stopSpread = nil
		}
		h.mu.Unlock()
	}()
	start, closed := time.Now(), 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for len(clients) > 0 {
		select {
		case <-timer.C:
		case <-h.empty: // everyone left already
			return
		case <-stop:
			return
		}
		due := int(time.Since(start)/max(step, 1)) + 1
		for ; len(clients) > 0 && closed < due; clients = clients[1:] {
			if c := clients[0]; !c.Closing() {
				c.Close(code, reason)
				closed++
			}
		}
		timer.Reset(max(step, spreadTick))
	}
}

// spreadTick is the shortest wait between two rounds of a spread's closes.
const spreadTick = 10 * time.Millisecond

// Wait waits for the spread of closes Retire started, if one runs.
func (h *Hub) Wait() {
	h.spread.Wait()
}

// Len is the number of clients the hub holds.
func (h *Hub) Len() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.clients)
}

// Finished tells whether a retired hub has let go of everything.
func (h *Hub) Finished() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.released
}

// WaitEmpty waits until a retired hub has no clients, or the timeout.
func (h *Hub) WaitEmpty(timeout time.Duration) {
	select {
	case <-h.empty:
	case <-time.After(timeout):
	}
}

// retireDone leaves every channel once a retired hub is empty, and reports
// whether the caller must now call h.release. It runs under h.mu; release must
// not, because destroying the broker waits for a dispatch that may be waiting
// for h.mu.
func (h *Hub) retireDone() bool {
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
