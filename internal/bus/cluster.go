package bus

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// rerouteDelay gives go-redis's lazy cluster-state reload time to finish
// before channels are routed again after a slot moved.
const rerouteDelay = 300 * time.Millisecond

// router assigns every wanted channel of a sharded cluster to the connection
// of the master that owns its slot, and starts connections as they are
// needed.
func (b *Broker) router() {
	defer b.wg.Done()
	retry := time.NewTimer(0)
	defer retry.Stop()
	var holdUntil time.Time // no routing before, while the cluster state reloads
	for {
		select {
		case <-b.routeWake:
		case <-retry.C:
		case <-b.ctx.Done():
			return
		}
		if wait := time.Until(holdUntil); wait > 0 {
			retry.Reset(wait)
			continue
		}
		if b.Table.TakeReload() {
			// Route nothing until go-redis has had time to load the new
			// slots: the old ones would send channels straight back to
			// their old node.
			holdUntil = time.Now().Add(rerouteDelay)
			b.cluster.ReloadState(b.ctx)
			retry.Reset(rerouteDelay)
			continue
		}
		if after := b.route(); after > 0 {
			retry.Reset(after)
		}
	}
}

// route routes the channels that wait for a connection and returns when to
// try again (0: no need).
func (b *Broker) route() time.Duration {
	todo := b.Table.UnroutedNames()
	if len(todo) == 0 {
		return 0
	}
	owners := make(map[string]*redis.Client, len(todo))
	var err error
	for _, ch := range todo {
		var c *redis.Client
		err = command(b.ctx, func(ctx context.Context) error {
			var err error
			c, err = b.cluster.MasterForKey(ctx, ch)
			return err
		})
		if err != nil {
			break
		}
		owners[ch] = c
	}
	b.Table.Assign(owners, func(node string, client *redis.Client) *SubConn {
		c := NewSubConn(b, node, client)
		b.wg.Add(1)
		go c.run()
		return c
	})
	if err != nil {
		if b.ctx.Err() == nil {
			b.avail.failed("", fmt.Errorf("finding the node of a channel: %w", err))
		}
		return time.Second
	}
	return 0
}

// UnroutedNames lists the wanted channels that have no connection.
func (t *ChannelTable) UnroutedNames() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	names := make([]string, 0, len(t.unrouted))
	for st := range t.unrouted {
		names = append(names, st.name)
	}
	return names
}

// Assign routes each channel to the connection of its owner's node, made by
// start when there is none yet.
func (t *ChannelTable) Assign(owners map[string]*redis.Client, start func(node string, client *redis.Client) *SubConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, client := range owners {
		st := t.Lookup(name)
		if st == nil || st.conn != nil || len(st.HubList()) == 0 {
			continue
		}
		node := client.Options().Addr
		c := t.conns[node]
		if c == nil {
			c = start(node, client)
			t.conns[node] = c
		}
		t.routeTo(st, c)
		c.mark(st)
	}
	t.updateUp()
}

// TakeReload reports whether a slot moved since it was last asked.
func (t *ChannelTable) TakeReload() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	reload := t.reload
	t.reload = false
	return reload
}

// unrouteAll sends every channel of c back to the router.
func (t *ChannelTable) unrouteAll(c *SubConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for st := range c.Routed {
		t.unroute(st)
	}
}

// RetireIfIdle removes c from the connections when it serves no channel and
// has none to unsubscribe; the caller then ends its loop.
func (t *ChannelTable) RetireIfIdle(c *SubConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(c.Routed) > 0 || len(c.Subs) > 0 {
		return false
	}
	delete(t.conns, c.node)
	t.updateUp()
	return true
}

// Moved handles a MOVED reply to an SSUBSCRIBE on c: the slot has another
// owner, so its channels go back to the router.
func (t *ChannelTable) Moved(c *SubConn, slot int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for st := range c.Routed {
		if KeySlot(st.name) != slot {
			continue
		}
		s := c.Subs[st]
		if s.state == subOn {
			s.state = subGone
		}
		s.pending = 0 // MOVED was the reply
		t.setSub(c, st, s)
		t.unroute(st)
	}
}

// Dropped handles a sunsubscribe on c. One we did not ask for comes from
// Redis when the channel's slot moved to another node (migration,
// failover): the channel goes back to the router, which finds its new owner.
func (t *ChannelTable) Dropped(c *SubConn, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, s := t.subscriptionOf(c, name)
	if st == nil || s.state != subOn { // unknown, or we unsubscribed it ourselves
		return
	}
	s.state = subGone
	t.setSub(c, st, s)
	if st.conn == c {
		t.unroute(st)
	}
}

// movedSlot reads the slot of a "MOVED <slot> <host:port>" error reply.
func movedSlot(err error) (int, bool) {
	f := strings.Fields(err.Error())
	if len(f) != 3 || f[0] != "MOVED" {
		return 0, false
	}
	slot, err := strconv.Atoi(f[1])
	return slot, err == nil
}

// KeySlot is Redis Cluster's slot of a key or channel: CRC16 (XMODEM) of the
// key, or of its {hash tag}, modulo 16384. go-redis has it only internally.
func KeySlot(key string) int {
	if tag, ok := hashTag(key); ok {
		key = tag
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
