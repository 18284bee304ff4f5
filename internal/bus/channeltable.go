package bus

import (
	"slices"
	"sync"
	"sync/atomic"
)

// ChannelTable is a broker's record of its channels: which hubs need each
// one, which subscriber connection serves it, and what each connection has
// asked Redis for. Every change of that state is one of its methods, under
// its mutex; none does I/O. The work of each is proportional to what changed,
// not to the number of channels: a connection keeps the set of its channels
// whose wanted state changed (dirty) and sends commands for those only.
type ChannelTable struct {
	Avail  *availability
	Single *SubConn      // the one connection; nil with sharded Pub/Sub
	route  chan struct{} // sharded: the router has channels to route; cap 1
	heard  chan struct{} // a channel's subscription was confirmed: see listening; cap 1

	// byName maps a name to its *channelState. Writes happen under mu;
	// dispatch reads it without the lock, once per Redis message.
	byName sync.Map

	mu       sync.Mutex
	conns    map[string]*SubConn        // sharded: by node address
	unrouted map[*channelState]struct{} // sharded: wanted, without a connection
	reload   bool                       // sharded: a slot moved; refresh the cluster state before routing
}

// channelState is one channel.
type channelState struct {
	name string
	hubs atomic.Pointer[[]Receiver] // copy-on-write: dispatch reads it without the lock
	// set once a hub with history joins: the node fills the channel's gaps
	history atomic.Pointer[channelHistory]
	// set when it is the presence events channel of the channel it names
	presenceOf atomic.Pointer[string]
	// Redis confirmed its subscription on the connection that serves it
	// (or refused it: there is nothing to wait for); see listening
	listening atomic.Bool

	// under channelTable.mu
	conn        *SubConn // the connection that should subscribe it; nil: not routed yet
	subscribers int      // connections that hold a subscription entry for it
	ready       chan struct{}
	readyClosed bool
	lost        *lostConn // its subscription was lost with this connection, and is not back yet
}

// lostConn is a connection that failed with confirmed subscriptions, shared
// by its channels until each is subscribed again, on whatever connection
// now serves it (a cluster's failed master is replaced by another node):
// the first one back counts the gap.
type lostConn struct{ counted bool }

// resubscribed says what a confirmed subscription ends.
type resubscribed uint8

const (
	notLost       resubscribed = iota // a first subscription
	lostBack                          // one lost with its connection
	lostFirstBack                     // the first one back of its lost connection
)

// NewChannelTable makes the table of a broker with one connection, single,
// or of a sharded broker (single nil) whose router listens on route.
func NewChannelTable(avail *availability, single *SubConn, route chan struct{}) *ChannelTable {
	return &ChannelTable{
		Avail:    avail,
		Single:   single,
		route:    route,
		heard:    make(chan struct{}, 1),
		conns:    make(map[string]*SubConn),
		unrouted: make(map[*channelState]struct{}),
	}
}

func (st *channelState) HubList() []Receiver {
	if p := st.hubs.Load(); p != nil {
		return *p
	}
	return nil
}

func (t *ChannelTable) Lookup(name string) *channelState {
	if v, ok := t.byName.Load(name); ok {
		return v.(*channelState)
	}
	return nil
}

// Join registers h as needing channel name, which gets a history when
// withHistory.
func (t *ChannelTable) Join(name string, h Receiver, withHistory bool) {
	t.Add(name, h, withHistory, "")
}

// JoinEvents registers h as needing the presence events of channel base.
func (t *ChannelTable) JoinEvents(base string, h Receiver) {
	t.Add(PresenceEvents(base), h, false, base)
}

// Add is join: the channel gets a history when withHistory, and is base's
// presence events channel when base is set.
func (t *ChannelTable) Add(name string, h Receiver, withHistory bool, base string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.Lookup(name)
	if st == nil {
		st = &channelState{name: name, ready: make(chan struct{})}
		t.byName.Store(name, st)
		if t.Single != nil {
			t.routeTo(st, t.Single)
		}
	}
	if withHistory && st.history.Load() == nil {
		st.history.Store(new(channelHistory))
	}
	if base != "" && st.presenceOf.Load() == nil {
		st.presenceOf.Store(&base)
	}
	old := st.HubList()
	hubs := append(old[:len(old):len(old)], h)
	st.hubs.Store(&hubs)
	if len(old) == 0 {
		t.wanted(st)
	}
}

// Leave undoes join.
func (t *ChannelTable) Leave(name string, h Receiver) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.Lookup(name)
	if st == nil {
		return
	}
	old := st.HubList()
	hubs := slices.DeleteFunc(slices.Clone(old), func(x Receiver) bool { return x == h })
	st.hubs.Store(&hubs)
	if len(old) > 0 && len(hubs) == 0 {
		t.wanted(st)
	}
}

// wanted follows a channel that became wanted or unwanted: its connection
// must subscribe or unsubscribe it, or the router must find it one.
func (t *ChannelTable) wanted(st *channelState) {
	want := len(st.HubList()) > 0
	switch {
	case st.conn != nil:
		st.conn.mark(st)
	case want:
		t.unrouted[st] = struct{}{}
		signal(t.route)
	default:
		delete(t.unrouted, st)
	}
	t.forgetIfUnused(st)
	t.updateUp()
}

// routeTo makes c the connection that serves st.
func (t *ChannelTable) routeTo(st *channelState, c *SubConn) {
	st.conn = c
	c.Routed[st] = struct{}{}
	delete(t.unrouted, st)
}

// unroute takes st from its connection, which unsubscribes what go-redis
// still lists, and hands it to the router once the cluster state is fresh.
func (t *ChannelTable) unroute(st *channelState) {
	c := st.conn
	delete(c.Routed, st)
	st.conn = nil
	st.listening.Store(false)
	c.mark(st)
	st.renewReady() // its next connection subscribes it
	t.reload = true
	t.wanted(st)
}

// forgetIfUnused drops a channel that no hub needs and no connection has a
// subscription entry for.
func (t *ChannelTable) forgetIfUnused(st *channelState) {
	if len(st.HubList()) > 0 || st.subscribers > 0 {
		return
	}
	t.byName.CompareAndDelete(st.name, st)
	if st.conn != nil {
		delete(st.conn.Routed, st)
		st.conn = nil
	}
	delete(t.unrouted, st)
	st.closeReady()
	signal(t.heard) // its frames need not wait for it any more
}

// closeReady releases the upgrades waiting for st's confirmation.
func (st *channelState) closeReady() {
	if !st.readyClosed {
		st.readyClosed = true
		close(st.ready)
	}
}

// renewReady makes new upgrades wait for the reply to a SUBSCRIBE that is
// about to be sent, once the waiters of the last one were released.
func (st *channelState) renewReady() {
	if st.readyClosed {
		st.ready, st.readyClosed = make(chan struct{}), false
	}
}

// ReadyChan is closed once Redis has confirmed the subscription of a
// channel; nil when there is nothing to wait for (an outage, or a channel
// nobody joined).
func (t *ChannelTable) ReadyChan(name string) <-chan struct{} {
	if t.Avail.Outage() {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.Lookup(name); st != nil {
		return st.ready
	}
	return nil
}

// listening reports whether this node hears what is published on channel
// name now: Redis confirmed its subscription on the connection that serves
// it. The outbox holds a channel's frames until then, so that this node's
// clients get what they sent meanwhile, and a cluster's shard that is down
// holds back its own channels only (the others' subscriptions are
// confirmed). A channel this node does not subscribe waits for the one
// connection, or for nothing with sharded Pub/Sub. It takes no lock but the
// availability's for such a channel.
func (t *ChannelTable) listening(name string) bool {
	if st := t.Lookup(name); st != nil && len(st.HubList()) > 0 {
		return st.listening.Load()
	}
	return t.Single == nil || t.Avail.IsUp()
}

// idle reports whether c serves no channel and has none to unsubscribe.
func (t *ChannelTable) idle(c *SubConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(c.Routed) == 0 && len(c.Subs) == 0
}

// updateUp tells the availability whether every wanted channel is on a
// connection that is up. Sharded, that is: none waits for a route, and every
// connection that serves one is up.
func (t *ChannelTable) updateUp() {
	up := true
	if t.Single != nil {
		up = t.Single.up
	} else {
		up = len(t.unrouted) == 0
		for _, c := range t.conns {
			up = up && (c.up || len(c.Routed) == 0)
		}
	}
	t.Avail.set(up)
}
