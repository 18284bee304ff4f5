package redisws

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// brokers holds one broker per Redis configuration per process, shared by every
// handler instance (and so across config reloads) that names the same Redis.
var brokers = caddy.NewUsagePool()

const (
	// healthInterval is how long the subscriber may stay quiet before it sends
	// a PING; no reply within another interval means the connection is dead.
	healthInterval = 5 * time.Second
	// readyTimeout bounds how long an upgrade waits for Redis to confirm a new
	// channel's SUBSCRIBE before it goes ahead anyway.
	readyTimeout = 5 * time.Second
	// commandTimeout bounds each SUBSCRIBE/UNSUBSCRIBE/PING write.
	commandTimeout = 5 * time.Second
	minBackoff     = 100 * time.Millisecond
	// readyPing is the payload of the PING that follows a connection's first
	// SUBSCRIBE.
	readyPing  = "redis_ws:ready"
	maxBackoff = 5 * time.Second
)

// broker owns the Redis side for one Redis configuration: one subscriber
// connection whose channels are the union of every hub's channels, and the
// publisher. It must not hold anything of the config that created it (logger,
// context): it outlives that config across reloads.
type broker struct {
	client *redis.Client
	out    *outbox

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when run has returned

	wake     chan struct{} // a channel's wanted state changed; cap 1
	lastRecv atomic.Int64  // unix nanos of the last reply read by the subscriber

	mu       sync.RWMutex
	up       bool          // a subscriber connection is established and its channels confirmed
	upCh     chan struct{} // closed while up
	channels map[string]*channelState
}

// channelState is a channel's wanted state (the hubs that need it) and its
// actual state on the current subscriber connection.
type channelState struct {
	hubs       []*hub // copy-on-write: dispatch reads it without holding mu
	subscribed bool   // SUBSCRIBE sent on the current connection
	pending    int    // SUBSCRIBE replies still expected
	ready      chan struct{}
	readyOnce  bool // ready is closed
}

func newBroker(client *redis.Client) *broker {
	ctx, cancel := context.WithCancel(context.Background())
	b := &broker{
		client:   client,
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		upCh:     make(chan struct{}),
		channels: make(map[string]*channelState),
	}
	b.out = newOutbox(ctx, client, b.whenUp)
	go b.run()
	return b
}

// Destruct implements caddy.Destructor; the pool calls it when the last
// handler using this Redis configuration is gone.
func (b *broker) Destruct() error {
	b.cancel()
	<-b.done
	b.out.wait()
	return b.client.Close()
}

func logger() *zap.Logger { return caddy.Log().Named("http.handlers.redis_ws") }

// join registers h as needing channel ch.
func (b *broker) join(ch string, h *hub) {
	b.mu.Lock()
	st := b.channels[ch]
	if st == nil {
		st = &channelState{ready: make(chan struct{})}
		b.channels[ch] = st
	}
	st.hubs = append(st.hubs[:len(st.hubs):len(st.hubs)], h)
	b.mu.Unlock()
	b.signal()
}

// leave undoes join.
func (b *broker) leave(ch string, h *hub) {
	b.mu.Lock()
	if st := b.channels[ch]; st != nil {
		hubs := make([]*hub, 0, len(st.hubs))
		for _, x := range st.hubs {
			if x != h {
				hubs = append(hubs, x)
			}
		}
		st.hubs = hubs
	}
	b.mu.Unlock()
	b.signal()
}

// whenUp returns a channel that is closed while the subscriber is up.
func (b *broker) whenUp() <-chan struct{} {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.upCh
}

func (b *broker) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// waitReady waits until Redis has confirmed the subscription of every channel,
// so that a client that is told it is connected misses nothing published
// after. While Redis is down it does not wait: the client is served anyway and
// its channels are subscribed when Redis is back.
func (b *broker) waitReady(ctx context.Context, channels []string) {
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	for _, ch := range channels {
		b.mu.RLock()
		var ready chan struct{}
		if st := b.channels[ch]; st != nil && b.up {
			ready = st.ready
		}
		b.mu.RUnlock()
		if ready == nil {
			continue
		}
		select {
		case <-ready:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// run keeps a subscriber connection up for as long as the broker lives.
func (b *broker) run() {
	defer close(b.done)
	backoff := minBackoff
	var downSince time.Time
	first := true
	for {
		err := b.session(func() {
			backoff = minBackoff
			if !downSince.IsZero() {
				logger().Info("redis subscription restored",
					zap.String("redis", b.client.Options().Addr),
					zap.Duration("down_for", time.Since(downSince)))
				downSince = time.Time{}
			}
			first = false
		})
		if b.ctx.Err() != nil {
			return
		}
		if downSince.IsZero() {
			downSince = time.Now()
			msg := "redis subscription lost; retrying"
			if first {
				msg = "redis unavailable; retrying"
			}
			logger().Warn(msg, zap.String("redis", b.client.Options().Addr), zap.Error(err))
		}
		// Full jitter keeps a fleet of nodes from reconnecting in step.
		sleep := time.Duration(rand.Int64N(int64(backoff))) + minBackoff
		backoff = min(2*backoff, maxBackoff)
		select {
		case <-time.After(sleep):
		case <-b.ctx.Done():
			return
		}
	}
}

// session runs one subscriber connection until it fails. onUp is called once
// Redis has confirmed the channels subscribed when it connected.
func (b *broker) session(onUp func()) error {
	ps := b.client.Subscribe(b.ctx) // no channels yet: no I/O
	readerDone := make(chan error, 1)
	started := false
	defer func() {
		_ = ps.Close() // also ends the reader's Receive
		if started {
			<-readerDone
		}
		b.disconnected()
	}()

	// The PING dials and proves the connection before anything depends on it.
	if err := b.command(func(ctx context.Context) error { return ps.Ping(ctx) }); err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	b.lastRecv.Store(time.Now().UnixNano())
	upCh := make(chan struct{})
	go func() { readerDone <- b.receive(ps, upCh) }()
	started = true
	if err := b.reconcile(ps); err != nil {
		return err
	}
	// Replies come in order: this one means every SUBSCRIBE above is confirmed.
	if err := b.command(func(ctx context.Context) error { return ps.Ping(ctx, readyPing) }); err != nil {
		return fmt.Errorf("pinging: %w", err)
	}

	ticker := time.NewTicker(healthInterval)
	defer ticker.Stop()
	pinged := false
	for {
		if err := b.reconcile(ps); err != nil {
			return err
		}
		select {
		case <-upCh:
			upCh = nil
			onUp()
		case <-b.wake:
		case err := <-readerDone:
			started = false
			return fmt.Errorf("receiving: %w", err)
		case <-ticker.C:
			quiet := time.Since(time.Unix(0, b.lastRecv.Load()))
			if quiet < healthInterval {
				pinged = false
				continue
			}
			if pinged && quiet >= 2*healthInterval {
				return fmt.Errorf("no reply from redis for %s", quiet.Round(time.Second))
			}
			if err := b.command(func(ctx context.Context) error { return ps.Ping(ctx) }); err != nil {
				return fmt.Errorf("pinging: %w", err)
			}
			pinged = true
		case <-b.ctx.Done():
			return b.ctx.Err()
		}
	}
}

func (b *broker) command(f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(b.ctx, commandTimeout)
	defer cancel()
	return f(ctx)
}

// reconcile makes the connection's subscriptions match what the hubs need.
// Only the session goroutine sends commands, so they reach Redis in the
// order the states changed.
func (b *broker) reconcile(ps *redis.PubSub) error {
	var sub, unsub []string
	b.mu.Lock()
	for ch, st := range b.channels {
		switch {
		case len(st.hubs) > 0 && !st.subscribed:
			st.subscribed = true
			st.pending++
			if st.readyOnce { // a new life of the channel: wait for its own reply
				st.ready, st.readyOnce = make(chan struct{}), false
			}
			sub = append(sub, ch)
		case len(st.hubs) == 0 && st.subscribed:
			st.subscribed = false
			unsub = append(unsub, ch)
		}
		if len(st.hubs) == 0 && st.pending == 0 {
			delete(b.channels, ch)
		}
	}
	b.mu.Unlock()
	// Never call Unsubscribe with no channels: it means all of them.
	if len(sub) > 0 {
		if err := b.command(func(ctx context.Context) error { return ps.Subscribe(ctx, sub...) }); err != nil {
			return fmt.Errorf("subscribing: %w", err)
		}
	}
	if len(unsub) > 0 {
		if err := b.command(func(ctx context.Context) error { return ps.Unsubscribe(ctx, unsub...) }); err != nil {
			return fmt.Errorf("unsubscribing: %w", err)
		}
	}
	return nil
}

// receive reads the subscriber connection until it fails or is closed.
func (b *broker) receive(ps *redis.PubSub, up chan struct{}) error {
	for {
		msg, err := ps.Receive(b.ctx)
		if err != nil {
			return err
		}
		b.lastRecv.Store(time.Now().UnixNano())
		switch m := msg.(type) {
		case *redis.Message:
			b.dispatch(m)
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				b.confirmed(m.Channel)
			}
		case *redis.Pong:
			if m.Payload == readyPing && up != nil {
				b.mu.Lock()
				b.up = true
				close(b.upCh)
				b.mu.Unlock()
				close(up)
				up = nil
			}
		}
	}
}

func (b *broker) confirmed(ch string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.channels[ch]
	if st == nil || st.pending == 0 {
		return
	}
	st.pending--
	if st.pending > 0 {
		return
	}
	if st.subscribed && !st.readyOnce {
		st.readyOnce = true
		close(st.ready)
	}
	if !st.subscribed && len(st.hubs) == 0 {
		delete(b.channels, ch)
	}
}

// disconnected resets the actual state after a connection ended, and releases
// every waiter: with Redis down there is nothing to wait for.
func (b *broker) disconnected() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.up {
		b.up = false
		b.upCh = make(chan struct{})
	}
	for ch, st := range b.channels {
		st.subscribed = false
		st.pending = 0
		if !st.readyOnce {
			st.readyOnce = true
			close(st.ready)
		}
		if len(st.hubs) == 0 {
			delete(b.channels, ch)
		}
	}
}

// dispatch hands one Redis message to every hub that has clients for its
// channel. It never blocks on a client.
func (b *broker) dispatch(m *redis.Message) {
	b.mu.RLock()
	var hubs []*hub
	if st := b.channels[m.Channel]; st != nil {
		hubs = st.hubs
	}
	b.mu.RUnlock()
	if len(hubs) == 0 {
		return
	}
	f := newFrame(m.Payload)
	for _, h := range hubs {
		h.deliver(m.Channel, f)
	}
}

// publish queues a client frame for Redis; false means it was dropped.
func (b *broker) publish(ch string, data []byte) bool {
	return b.out.add(ch, data)
}
