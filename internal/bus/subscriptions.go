package bus

// The channel table's record of what each subscriber connection has asked
// Redis for, and the replies it waits for: the actual state, which the
// connection's commands bring to the wanted one (channeltable.go).

// subscription is a channel's state on one connection. Replies are counted
// per connection because Redis answers each command on the connection it
// came on.
type subscription struct {
	state   subState
	pending int // replies to SUBSCRIBE still expected
}

type subState int8

const (
	subOff  subState = iota // nothing to undo: UNSUBSCRIBE sent, or never subscribed
	subOn                   // SUBSCRIBE sent
	subGone                 // Redis dropped it (slot moved); go-redis still lists it
)

// setSub stores a channel's subscription on c, and keeps the count of
// connections holding one and the channels gauge.
func (t *ChannelTable) setSub(c *SubConn, st *channelState, s subscription) {
	old, had := c.Subs[st]
	switch {
	case old.state != subOn && s.state == subOn:
		Metrics.Channels.Inc()
	case old.state == subOn && s.state != subOn:
		Metrics.Channels.Dec()
	}
	keep := s.state != subOff || s.pending > 0
	switch {
	case keep:
		if !had {
			st.subscribers++
		}
		c.Subs[st] = s
	case had:
		delete(c.Subs, st)
		st.subscribers--
	}
}

// subscriptionOf finds a channel and its subscription on c; st is nil when
// the channel is unknown.
func (t *ChannelTable) subscriptionOf(c *SubConn, name string) (st *channelState, s subscription) {
	if st = t.Lookup(name); st != nil {
		s = c.Subs[st]
	}
	return st, s
}

// Changes returns what c must send to make its subscriptions match what the
// hubs need, and records it as sent.
func (t *ChannelTable) Changes(c *SubConn) (sub, unsub []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for st := range c.Dirty {
		want := st.conn == c && len(st.HubList()) > 0
		s := c.Subs[st]
		switch {
		case want && s.state != subOn:
			st.renewReady()
			s.state = subOn
			s.pending++
			sub = append(sub, st.name)
		case !want && s.state != subOff:
			s.state = subOff
			if len(st.HubList()) == 0 { // else it is subscribed on another connection
				st.listening.Store(false)
			}
			unsub = append(unsub, st.name)
		}
		t.setSub(c, st, s)
		t.forgetIfUnused(st)
	}
	clear(c.Dirty)
	return sub, unsub
}

// Confirmed counts Redis's reply to a SUBSCRIBE of name on c, and returns
// the channel when its subscription is now confirmed on the connection
// that serves it, with whether that subscription had been lost.
func (t *ChannelTable) Confirmed(c *SubConn, name string) (*channelState, resubscribed) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, s := t.subscriptionOf(c, name)
	if st == nil || s.pending == 0 {
		return nil, notLost
	}
	s.pending--
	t.setSub(c, st, s)
	t.forgetIfUnused(st)
	if s.pending > 0 || s.state != subOn || st.conn != c {
		return nil, notLost
	}
	st.closeReady()
	st.listening.Store(true)
	signal(t.heard)
	back := notLost
	if lost := st.lost; lost != nil {
		st.lost, back = nil, lostBack
		if !lost.counted {
			lost.counted, back = true, lostFirstBack
		}
	}
	return st, back
}

// Refused handles an error reply to a SUBSCRIBE on c (NOPERM from an ACL):
// the confirmations its channels wait for will not come.
func (t *ChannelTable) Refused(c *SubConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for st, s := range c.Subs {
		if s.pending > 0 {
			s.pending = 0
			t.setSub(c, st, s)
			st.closeReady()
			st.listening.Store(true) // as heard as it will be: its frames do not wait
			t.forgetIfUnused(st)
		}
	}
	signal(t.heard)
}

// Connected records that Redis confirmed every SUBSCRIBE c sent when it
// connected.
func (t *ChannelTable) Connected(c *SubConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c.up = true
	t.updateUp()
	signal(t.heard) // channels this node does not subscribe wait for the one connection
}

// Disconnected resets c's subscriptions after its connection ended: the next
// one subscribes every channel routed to it. It releases their waiters: with
// Redis down there is nothing to wait for. The channels whose subscription
// was confirmed are lost until they are subscribed again.
func (t *ChannelTable) Disconnected(c *SubConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c.up = false
	lost := new(lostConn)
	for st, s := range c.Subs {
		if st.conn == c {
			if s.state == subOn && s.pending == 0 && st.lost == nil {
				st.lost = lost
			}
			st.listening.Store(false)
		}
		t.setSub(c, st, subscription{})
		t.forgetIfUnused(st)
	}
	for st := range c.Routed {
		c.Dirty[st] = struct{}{}
		st.closeReady()
		t.forgetIfUnused(st)
	}
	t.updateUp()
}
