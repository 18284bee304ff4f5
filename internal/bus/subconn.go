package bus

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

const (
	// HealthInterval is how long a subscriber connection may stay quiet
	// before it sends a PING; no reply within another interval means the
	// connection is dead.
	HealthInterval = 5 * time.Second
	// commandTimeout bounds each SUBSCRIBE/UNSUBSCRIBE/PING write.
	commandTimeout = 5 * time.Second
	// readyPing is the payload of the PING that follows a connection's first
	// SUBSCRIBE: replies come in order, so its reply confirms them all.
	readyPing = "redis_ws:ready"
)

// errIdle ends a cluster node's connection that no channel needs any more.
var errIdle = errors.New("no channel left on this node")

// SubConn is one subscriber connection and the loop that keeps it up: the
// only one with sharded Pub/Sub on a cluster is one per master that owns a
// wanted channel, since one go-redis PubSub talks to one node.
type SubConn struct {
	b        *Broker
	node     string        // node address; "" for the single connection
	client   *redis.Client // the node's client (sharded); nil: b.client
	wake     chan struct{} // its channels changed; cap 1
	lastRecv atomic.Int64  // unix nanos of the last reply read

	// under channelTable.mu
	up     bool                           // Redis confirmed what it sent when it connected
	Routed map[*channelState]struct{}     // channels it should subscribe
	Subs   map[*channelState]subscription // what it has asked Redis for
	Dirty  map[*channelState]struct{}     // channels whose wanted state changed since it last sent commands
}

func NewSubConn(b *Broker, node string, client *redis.Client) *SubConn {
	return &SubConn{
		b: b, node: node, client: client, wake: make(chan struct{}, 1),
		Routed: make(map[*channelState]struct{}),
		Subs:   make(map[*channelState]subscription),
		Dirty:  make(map[*channelState]struct{}),
	}
}

// mark records that st must be reconciled on c. It runs under
// channelTable.mu.
func (c *SubConn) mark(st *channelState) {
	c.Dirty[st] = struct{}{}
	signal(c.wake)
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// run keeps the connection up for as long as the broker lives or, for a
// cluster node, as long as a channel needs it.
func (c *SubConn) run() {
	b := c.b
	defer b.wg.Done()
	var retry backoff
	for {
		err := c.session(retry.reset)
		if b.ctx.Err() != nil {
			return
		}
		if c.node != "" && b.Table.RetireIfIdle(c) {
			return
		}
		if errors.Is(err, errIdle) {
			continue
		}
		b.avail.failed(c.node, err)
		if c.node != "" {
			b.Table.unrouteAll(c) // the master may have failed over: route its channels anew
		}
		if !retry.Wait(b.ctx) {
			return
		}
	}
}

// session runs one connection until it fails. onUp is called once Redis has
// confirmed the channels subscribed when it connected.
func (c *SubConn) session(onUp func()) error {
	b := c.b
	if c.node != "" && b.Table.idle(c) {
		return errIdle
	}
	var ps *redis.PubSub
	if c.client != nil {
		ps = c.client.Subscribe(b.ctx) // pinned to this node
	} else {
		ps = b.Client.Subscribe(b.ctx) // no channels yet: no I/O
	}
	readerDone := make(chan error, 1)
	started := false
	defer func() {
		_ = ps.Close() // also ends the reader's Receive
		if started {
			<-readerDone
		}
		b.Table.Disconnected(c)
	}()

	// The PING dials and proves the connection before anything depends on it.
	if err := command(b.ctx, func(ctx context.Context) error { return ps.Ping(ctx) }); err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	c.lastRecv.Store(time.Now().UnixNano())
	upCh := make(chan struct{})
	go func() { readerDone <- c.receive(ps, upCh) }()
	started = true
	if err := c.Reconcile(ps); err != nil {
		return err
	}
	if err := command(b.ctx, func(ctx context.Context) error { return ps.Ping(ctx, readyPing) }); err != nil {
		return fmt.Errorf("pinging: %w", err)
	}

	ticker := time.NewTicker(HealthInterval)
	defer ticker.Stop()
	pinged := false
	for {
		if err := c.Reconcile(ps); err != nil {
			return err
		}
		select {
		case <-upCh:
			upCh = nil
			onUp()
		case <-c.wake:
		case err := <-readerDone:
			started = false
			return fmt.Errorf("receiving: %w", err)
		case <-ticker.C:
			if c.node != "" && b.Table.idle(c) {
				return errIdle
			}
			quiet := time.Since(time.Unix(0, c.lastRecv.Load()))
			if quiet < HealthInterval {
				pinged = false
				continue
			}
			if pinged && quiet >= 2*HealthInterval {
				return fmt.Errorf("no reply from redis for %s", quiet.Round(time.Second))
			}
			if err := command(b.ctx, func(ctx context.Context) error { return ps.Ping(ctx) }); err != nil {
				return fmt.Errorf("pinging: %w", err)
			}
			pinged = true
		case <-b.ctx.Done():
			return b.ctx.Err()
		}
	}
}

// command runs one Redis command with commandTimeout.
func command(parent context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(parent, commandTimeout)
	defer cancel()
	return f(ctx)
}

// Reconcile sends the commands that make the connection's subscriptions
// match what the hubs need. Only the session goroutine sends them, so they
// reach Redis in the order the states changed.
func (c *SubConn) Reconcile(ps *redis.PubSub) error {
	sub, unsub := c.b.Table.Changes(c)
	if len(sub) > 0 {
		if err := c.send(ps, true, sub); err != nil {
			return fmt.Errorf("subscribing: %w", err)
		}
	}
	if len(unsub) > 0 {
		if err := c.send(ps, false, unsub); err != nil {
			return fmt.Errorf("unsubscribing: %w", err)
		}
	}
	return nil
}

// send writes SUBSCRIBE or UNSUBSCRIBE (sharded: one SSUBSCRIBE or
// SUNSUBSCRIBE per channel, since one command may not span slots). Never
// with no channels: Unsubscribe() means all of them.
func (c *SubConn) send(ps *redis.PubSub, subscribe bool, channels []string) error {
	ctx := c.b.ctx
	if c.node == "" {
		return command(ctx, func(ctx context.Context) error {
			if subscribe {
				return ps.Subscribe(ctx, channels...)
			}
			return ps.Unsubscribe(ctx, channels...)
		})
	}
	for _, ch := range channels {
		err := command(ctx, func(ctx context.Context) error {
			if subscribe {
				return ps.SSubscribe(ctx, ch)
			}
			return ps.SUnsubscribe(ctx, ch)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// receive reads the connection until it fails or is closed: messages go to
// dispatch, replies to the channel table.
func (c *SubConn) receive(ps *redis.PubSub, up chan struct{}) error {
	b := c.b
	for {
		msg, err := ps.Receive(b.ctx)
		if err != nil {
			var reply redis.Error
			if !errors.As(err, &reply) {
				return err
			}
			// An error reply refuses one command; the connection is fine.
			c.lastRecv.Store(time.Now().UnixNano())
			if slot, ok := movedSlot(err); ok && c.node != "" {
				b.Table.Moved(c, slot)
				continue
			}
			b.Table.Refused(c)
			warnSubscriptionRefused.log([]zap.Field{zap.String("redis", b.avail.desc), zap.String("error", errorCode(err))}, zap.Error(err))
			continue
		}
		c.lastRecv.Store(time.Now().UnixNano())
		switch m := msg.(type) {
		case *redis.Message:
			b.Dispatch(m)
		case *redis.Subscription:
			switch m.Kind {
			case "subscribe", "ssubscribe":
				if st, back := b.Table.Confirmed(c, m.Channel); st != nil {
					b.subscribed(st, back)
				}
			case "sunsubscribe":
				b.Table.Dropped(c, m.Channel)
			}
		case *redis.Pong:
			if m.Payload == readyPing && up != nil {
				b.Table.Connected(c)
				close(up)
				up = nil
			}
		}
	}
}
