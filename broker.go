package redisws

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
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
	// fanoutQueue is how many messages a fan-out worker may have waiting
	// before the subscriber waits for it.
	fanoutQueue = 1024
	// readyPing is the payload of the PING that follows a connection's first
	// SUBSCRIBE.
	readyPing  = "redis_ws:ready"
	maxBackoff = 5 * time.Second
	// rerouteDelay gives go-redis's lazy cluster-state reload time to finish
	// before channels are routed again after a slot moved.
	rerouteDelay = 300 * time.Millisecond
)

// errIdle ends a cluster shard's connection that no channel needs any more.
var errIdle = errors.New("no channel left on this node")

// broker owns the Redis side for one Redis configuration: the subscriber
// connections whose channels are the union of every hub's channels, and the
// publisher. With one server, Sentinel, or a cluster in classic Pub/Sub mode
// there is one subscriber connection; with sharded Pub/Sub on a cluster there
// is one per master that owns a wanted channel (one PubSub can only talk to
// one node: FACTS.md §2). It must not hold anything of the config that
// created it (logger, context): it outlives that config across reloads.
type broker struct {
	client  redis.UniversalClient
	cluster *redis.ClusterClient // set when channels are sharded
	desc    string               // names the Redis in logs; no credentials
	out     *outbox

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the router and the shards' goroutines

	wake chan struct{} // sharded: a channel needs routing; cap 1

	// fanout are the fan-out workers' queues; a channel always goes to the
	// same worker, which keeps its messages in order.
	fanout []chan delivery

	mu        sync.RWMutex
	up        bool          // every wanted channel's connection is established and confirmed
	upCh      chan struct{} // closed while up
	everUp    bool
	downSince time.Time // an outage is logged; zero when none
	channels  map[string]*channelState
	single    *shard            // the one connection when not sharded
	shards    map[string]*shard // sharded: by node address
	reload    bool              // sharded: a slot moved; refresh the cluster state before routing
	holdUntil time.Time         // sharded: no routing before, while the state reloads
	counted   int               // subscribed channels as last added to the channels gauge
}

// channelState is a channel's wanted state (the hubs that need it, the shard
// that serves it) and the confirmations it waits for.
type channelState struct {
	hubs      []*hub // copy-on-write: dispatch reads it without holding mu
	shard     *shard // the connection that should subscribe it; nil: not routed yet
	pending   int    // SUBSCRIBE replies still expected
	ready     chan struct{}
	readyOnce bool // ready is closed
}

// A channel's state on a shard's current connection.
type subState int8

const (
	subOn   subState = iota + 1 // SUBSCRIBE sent
	subGone                     // Redis dropped it (slot moved); go-redis still lists it
)

// shard is one subscriber connection and the loop that keeps it up.
type shard struct {
	b        *broker
	node     string        // node address; "" for the single connection
	client   *redis.Client // the node's client (sharded); nil: b.client
	wake     chan struct{} // its channels changed; cap 1
	lastRecv atomic.Int64  // unix nanos of the last reply read

	// under b.mu
	up   bool
	subs map[string]subState
}

func newBroker(setup *redisSetup) *broker {
	ctx, cancel := context.WithCancel(context.Background())
	b := &broker{
		client:   setup.client(),
		desc:     setup.describe(),
		ctx:      ctx,
		cancel:   cancel,
		wake:     make(chan struct{}, 1),
		upCh:     make(chan struct{}),
		channels: make(map[string]*channelState),
		shards:   make(map[string]*shard),
	}
	if setup.sharded {
		b.cluster = b.client.(*redis.ClusterClient)
	}
	b.out = startOutbox(ctx, b.client, setup.sharded, b.whenUp)
	b.startFanout()
	if b.cluster != nil {
		b.wg.Add(1)
		go b.router()
	} else {
		b.single = b.newShard("", nil)
		b.wg.Add(1)
		go b.single.run()
	}
	return b
}

func (b *broker) newShard(node string, client *redis.Client) *shard {
	return &shard{b: b, node: node, client: client, wake: make(chan struct{}, 1), subs: make(map[string]subState)}
}

// Destruct implements caddy.Destructor; the pool calls it when the last
// handler using this Redis configuration is gone.
func (b *broker) Destruct() error {
	b.cancel()
	b.wg.Wait()
	b.out.wait()
	b.mu.Lock()
	metrics.channels.Sub(float64(b.counted))
	b.counted = 0
	b.mu.Unlock()
	return b.client.Close()
}

// countChannels brings the channels gauge up to date. It runs under b.mu.
func (b *broker) countChannels() {
	n := 0
	for _, s := range b.allShards() {
		for _, state := range s.subs {
			if state == subOn {
				n++
			}
		}
	}
	metrics.channels.Add(float64(n - b.counted))
	b.counted = n
}

// allShards lists the subscriber connections. It runs under b.mu.
func (b *broker) allShards() []*shard {
	if b.single != nil {
		return []*shard{b.single}
	}
	shards := make([]*shard, 0, len(b.shards))
	for _, s := range b.shards {
		shards = append(shards, s)
	}
	return shards
}

// gap tells the hubs of s's channels that messages may have been missed
// while s was disconnected; each applies its handler's gap_policy.
func (b *broker) gap(s *shard) {
	metrics.gaps.Inc()
	type hubChannel struct {
		h  *hub
		ch string
	}
	var affected []hubChannel
	b.mu.RLock()
	for ch, st := range b.channels {
		if st.shard == s || b.single == s {
			for _, h := range st.hubs {
				affected = append(affected, hubChannel{h, ch})
			}
		}
	}
	b.mu.RUnlock()
	for _, a := range affected {
		a.h.gap(a.ch)
	}
}

func logger() *zap.Logger { return caddy.Log().Named("http.handlers.redis_ws") }

// redisLogger puts go-redis's own messages (failed dials, discarded
// connections) into Caddy's log at debug level; the broker's warn and info
// lines already say what an operator needs, once per outage. go-redis's
// logger is process-wide: this is set once, at init.
type redisLogger struct{}

func init() { redis.SetLogger(redisLogger{}) }

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	if ce := logger().Check(zapcore.DebugLevel, "go-redis"); ce != nil {
		ce.Write(zap.String("message", fmt.Sprintf(format, v...)))
	}
}

// join registers h as needing channel ch.
func (b *broker) join(ch string, h *hub) {
	b.mu.Lock()
	st := b.channels[ch]
	if st == nil {
		st = &channelState{ready: make(chan struct{}), shard: b.single}
		b.channels[ch] = st
	}
	st.hubs = append(st.hubs[:len(st.hubs):len(st.hubs)], h)
	s := st.shard
	b.mu.Unlock()
	if s != nil {
		signal(s.wake)
	} else {
		signal(b.wake)
	}
}

// leave undoes join.
func (b *broker) leave(ch string, h *hub) {
	b.mu.Lock()
	var s *shard
	if st := b.channels[ch]; st != nil {
		hubs := make([]*hub, 0, len(st.hubs))
		for _, x := range st.hubs {
			if x != h {
				hubs = append(hubs, x)
			}
		}
		st.hubs = hubs
		s = st.shard
	}
	b.mu.Unlock()
	if s != nil {
		signal(s.wake)
	} else {
		signal(b.wake)
	}
}

// whenUp returns a channel that is closed while the subscriber is up.
func (b *broker) whenUp() <-chan struct{} {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.upCh
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// waitReady waits until Redis has confirmed the subscription of every channel,
// so that a client that is told it is connected misses nothing published
// after. During an outage it does not wait: the client is served anyway and
// its channels are subscribed when Redis is back. A failed connection
// releases the waiters of its channels, so the wait is short either way.
func (b *broker) waitReady(ctx context.Context, channels []string) {
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	for _, ch := range channels {
		b.mu.RLock()
		var ready chan struct{}
		if st := b.channels[ch]; st != nil && b.downSince.IsZero() {
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

// updateUp recomputes whether every wanted channel is served by a connection
// that is up, and logs the end of an outage. It runs under b.mu.
func (b *broker) updateUp() {
	up := true
	if b.single != nil {
		up = b.single.up
	} else {
		for _, st := range b.channels {
			if len(st.hubs) > 0 && (st.shard == nil || !st.shard.up) {
				up = false
				break
			}
		}
	}
	if up == b.up {
		return
	}
	b.up = up
	if !up {
		b.upCh = make(chan struct{})
		return
	}
	close(b.upCh)
	b.everUp = true
	if !b.downSince.IsZero() {
		logger().Info("redis subscription restored",
			zap.String("redis", b.desc), zap.Duration("down_for", time.Since(b.downSince)))
		b.downSince = time.Time{}
	}
}

// failed logs the start of an outage, once until it ends. It runs under b.mu.
func (b *broker) failed(node string, err error) {
	if !b.downSince.IsZero() {
		return
	}
	b.downSince = time.Now()
	msg := "redis subscription lost; retrying"
	if !b.everUp {
		msg = "redis unavailable; retrying"
	}
	fields := []zap.Field{zap.String("redis", b.desc), zap.Error(err)}
	if node != "" {
		fields = append(fields, zap.String("node", node))
	}
	logger().Warn(msg, fields...)
}

// router assigns every wanted channel of a sharded cluster to the shard of
// the master that owns its slot, and starts shards as they are needed.
func (b *broker) router() {
	defer b.wg.Done()
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-b.wake:
		case <-retry.C:
		case <-b.ctx.Done():
			return
		}
		if after := b.route(); after > 0 {
			retry.Reset(after)
		}
	}
}

// route routes the channels that need it and returns when to try again (0:
// no need).
func (b *broker) route() time.Duration {
	b.mu.Lock()
	if b.reload {
		// Route nothing until go-redis has had time to load the new slots:
		// the old ones would send channels straight back to their old node.
		b.reload = false
		b.holdUntil = time.Now().Add(rerouteDelay)
		b.mu.Unlock()
		b.cluster.ReloadState(b.ctx)
		return rerouteDelay
	}
	if wait := time.Until(b.holdUntil); wait > 0 {
		b.mu.Unlock()
		return wait
	}
	var todo []string
	for ch, st := range b.channels {
		switch {
		case len(st.hubs) > 0 && st.shard == nil:
			todo = append(todo, ch)
		case len(st.hubs) == 0 && st.shard == nil && st.pending == 0:
			delete(b.channels, ch)
		}
	}
	b.updateUp()
	b.mu.Unlock()
	if len(todo) == 0 {
		return 0
	}
	owners := make(map[string]*redis.Client, len(todo))
	var err error
	for _, ch := range todo {
		ctx, cancel := context.WithTimeout(b.ctx, commandTimeout)
		var c *redis.Client
		c, err = b.cluster.MasterForKey(ctx, ch)
		cancel()
		if err != nil {
			break
		}
		owners[ch] = c
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch, c := range owners {
		st := b.channels[ch]
		if st == nil || st.shard != nil {
			continue
		}
		node := c.Options().Addr
		s := b.shards[node]
		if s == nil {
			s = b.newShard(node, c)
			b.shards[node] = s
			b.wg.Add(1)
			go s.run()
		}
		st.shard = s
		signal(s.wake)
	}
	b.updateUp()
	if err != nil {
		if b.ctx.Err() == nil {
			b.failed("", fmt.Errorf("finding the node of a channel: %w", err))
		}
		return time.Second
	}
	return 0
}

// unroute sends the channels of s that match drop back to the router, after
// a refresh of the cluster state. It runs under b.mu.
func (s *shard) unroute(drop func(ch string) bool) {
	b := s.b
	n := 0
	for ch, st := range b.channels {
		if st.shard == s && drop(ch) {
			st.shard = nil
			n++
		}
	}
	if n > 0 {
		b.reload = true
		signal(b.wake)
		signal(s.wake) // to unsubscribe what Redis still lists
	}
}

// run keeps the shard's connection up for as long as the broker lives or,
// for a cluster node, as long as a channel needs it.
func (s *shard) run() {
	b := s.b
	defer b.wg.Done()
	backoff := minBackoff
	connectedBefore := false
	for {
		err := s.session(func() {
			backoff = minBackoff
			if connectedBefore { // a reconnect: what was published meanwhile is lost
				metrics.redisReconnects.Inc()
				b.gap(s)
			}
			connectedBefore = true
		})
		if b.ctx.Err() != nil {
			return
		}
		b.mu.Lock()
		if s.node != "" && s.idle() {
			delete(b.shards, s.node)
			b.updateUp()
			b.mu.Unlock()
			return
		}
		if !errors.Is(err, errIdle) {
			b.failed(s.node, err)
			if s.node != "" {
				// The master may have failed over: route its channels anew.
				s.unroute(func(string) bool { return true })
			}
		}
		b.mu.Unlock()
		if errors.Is(err, errIdle) {
			continue
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

// idle reports whether no channel is routed to s and none is subscribed on
// it. It runs under b.mu.
func (s *shard) idle() bool {
	if len(s.subs) > 0 {
		return false
	}
	for _, st := range s.b.channels {
		if st.shard == s {
			return false
		}
	}
	return true
}

// session runs one subscriber connection until it fails. onUp is called once
// Redis has confirmed the channels subscribed when it connected.
func (s *shard) session(onUp func()) error {
	b := s.b
	b.mu.Lock()
	idle := s.node != "" && s.idle()
	b.mu.Unlock()
	if idle {
		return errIdle
	}
	var ps *redis.PubSub
	if s.client != nil {
		ps = s.client.Subscribe(b.ctx) // pinned to this node
	} else {
		ps = b.client.Subscribe(b.ctx) // no channels yet: no I/O
	}
	readerDone := make(chan error, 1)
	started := false
	defer func() {
		_ = ps.Close() // also ends the reader's Receive
		if started {
			<-readerDone
		}
		s.disconnected()
	}()

	// The PING dials and proves the connection before anything depends on it.
	if err := b.command(func(ctx context.Context) error { return ps.Ping(ctx) }); err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	s.lastRecv.Store(time.Now().UnixNano())
	upCh := make(chan struct{})
	go func() { readerDone <- s.receive(ps, upCh) }()
	started = true
	if err := s.reconcile(ps); err != nil {
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
		if err := s.reconcile(ps); err != nil {
			return err
		}
		select {
		case <-upCh:
			upCh = nil
			onUp()
		case <-s.wake:
		case err := <-readerDone:
			started = false
			return fmt.Errorf("receiving: %w", err)
		case <-ticker.C:
			if s.node != "" {
				b.mu.Lock()
				idle := s.idle()
				b.mu.Unlock()
				if idle {
					return errIdle
				}
			}
			quiet := time.Since(time.Unix(0, s.lastRecv.Load()))
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
func (s *shard) reconcile(ps *redis.PubSub) error {
	b := s.b
	var sub, unsub []string
	b.mu.Lock()
	for ch, st := range b.channels {
		if st.shard == s && len(st.hubs) > 0 && s.subs[ch] != subOn {
			s.subs[ch] = subOn
			st.pending++
			if st.readyOnce { // a new life of the channel: wait for its own reply
				st.ready, st.readyOnce = make(chan struct{}), false
			}
			sub = append(sub, ch)
		}
	}
	for ch := range s.subs {
		if st := b.channels[ch]; st == nil || st.shard != s || len(st.hubs) == 0 {
			delete(s.subs, ch)
			unsub = append(unsub, ch)
		}
	}
	for ch, st := range b.channels {
		if st.shard == s && len(st.hubs) == 0 && st.pending == 0 {
			delete(b.channels, ch)
		}
	}
	b.countChannels()
	b.mu.Unlock()
	if len(sub) > 0 {
		if err := s.send(ps, true, sub); err != nil {
			return fmt.Errorf("subscribing: %w", err)
		}
	}
	if len(unsub) > 0 {
		if err := s.send(ps, false, unsub); err != nil {
			return fmt.Errorf("unsubscribing: %w", err)
		}
	}
	return nil
}

// send writes SUBSCRIBE or UNSUBSCRIBE (sharded: one SSUBSCRIBE or
// SUNSUBSCRIBE per channel, since one command may not span slots). Never
// with no channels: Unsubscribe() means all of them.
func (s *shard) send(ps *redis.PubSub, subscribe bool, channels []string) error {
	b := s.b
	if s.node == "" {
		return b.command(func(ctx context.Context) error {
			if subscribe {
				return ps.Subscribe(ctx, channels...)
			}
			return ps.Unsubscribe(ctx, channels...)
		})
	}
	for _, ch := range channels {
		err := b.command(func(ctx context.Context) error {
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

// receive reads the subscriber connection until it fails or is closed.
func (s *shard) receive(ps *redis.PubSub, up chan struct{}) error {
	b := s.b
	refused := false // an error reply was logged on this connection
	for {
		msg, err := ps.Receive(b.ctx)
		if err != nil {
			var reply redis.Error
			if !errors.As(err, &reply) {
				return err
			}
			// An error reply refuses one command; the connection is fine.
			s.lastRecv.Store(time.Now().UnixNano())
			if !s.refusal(err) && !refused {
				refused = true
				logger().Warn("redis refused a subscription", zap.String("redis", b.desc), zap.Error(err))
			}
			continue
		}
		s.lastRecv.Store(time.Now().UnixNano())
		switch m := msg.(type) {
		case *redis.Message:
			b.dispatch(m)
		case *redis.Subscription:
			switch m.Kind {
			case "subscribe", "ssubscribe":
				b.confirmed(s, m.Channel)
			case "sunsubscribe":
				s.dropped(m.Channel)
			}
		case *redis.Pong:
			if m.Payload == readyPing && up != nil {
				b.mu.Lock()
				s.up = true
				b.updateUp()
				b.mu.Unlock()
				close(up)
				up = nil
			}
		}
	}
}

// refusal handles an error reply to a SUBSCRIBE: a slot that moved sends its
// channels back to the router and reports true; anything else (NOPERM from
// an ACL) releases the clients waiting for a confirmation that will not come.
func (s *shard) refusal(err error) bool {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if slot, ok := movedSlot(err); ok && s.node != "" {
		s.unroute(func(ch string) bool {
			if keySlot(ch) != slot {
				return false
			}
			if s.subs[ch] == subOn {
				s.subs[ch] = subGone
			}
			return true
		})
		return true
	}
	for _, st := range b.channels {
		if st.shard == s && st.pending > 0 {
			st.pending = 0
			if !st.readyOnce {
				st.readyOnce = true
				close(st.ready)
			}
		}
	}
	return false
}

// dropped handles a sunsubscribe. One we did not ask for comes from Redis
// when the channel's slot moved to another node (migration, failover): the
// channel goes back to the router, which finds its new owner.
func (s *shard) dropped(ch string) {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.subs[ch] != subOn { // we unsubscribed it ourselves
		return
	}
	s.subs[ch] = subGone
	s.unroute(func(c string) bool { return c == ch })
	b.countChannels()
}

func (b *broker) confirmed(s *shard, ch string) {
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
	on := s.subs[ch] == subOn
	if on && !st.readyOnce {
		st.readyOnce = true
		close(st.ready)
	}
	if !on && len(st.hubs) == 0 {
		delete(b.channels, ch)
	}
}

// disconnected resets the actual state after a connection ended, and releases
// every waiter of its channels: with Redis down there is nothing to wait for.
func (s *shard) disconnected() {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	s.up = false
	clear(s.subs)
	b.countChannels()
	for ch, st := range b.channels {
		if st.shard != s {
			continue
		}
		st.pending = 0
		if !st.readyOnce {
			st.readyOnce = true
			close(st.ready)
		}
		if len(st.hubs) == 0 {
			delete(b.channels, ch)
		}
	}
	b.updateUp()
}

// delivery is one Redis message on its way to the hubs of its channel.
type delivery struct {
	channel string
	hubs    []*hub
	f       *frame
}

// dispatch encodes one Redis message and hands it to the fan-out worker of
// its channel, so that the subscriber goes back to reading Redis while the
// message is fanned out. It never waits for a client.
func (b *broker) dispatch(m *redis.Message) {
	metrics.messages.Inc()
	b.mu.RLock()
	var hubs []*hub
	if st := b.channels[m.Channel]; st != nil {
		hubs = st.hubs
	}
	b.mu.RUnlock()
	if len(hubs) == 0 {
		return
	}
	d := delivery{channel: m.Channel, hubs: hubs, f: newFrame(m.Payload)}
	select {
	case b.fanout[maphash.String(fanoutSeed, m.Channel)%uint64(len(b.fanout))] <- d:
	case <-b.ctx.Done():
	}
}

// startFanout starts one fan-out worker per CPU.
func (b *broker) startFanout() {
	b.fanout = make([]chan delivery, runtime.GOMAXPROCS(0))
	for i := range b.fanout {
		b.fanout[i] = make(chan delivery, fanoutQueue)
		b.wg.Add(1)
		go b.deliverLoop(b.fanout[i])
	}
}

// deliverLoop is a fan-out worker.
func (b *broker) deliverLoop(queue chan delivery) {
	defer b.wg.Done()
	for {
		select {
		case d := <-queue:
			for _, h := range d.hubs {
				h.deliver(d.channel, d.f)
			}
		case <-b.ctx.Done():
			return
		}
	}
}

var fanoutSeed = maphash.MakeSeed()

// publish queues a client frame for Redis; false means it was dropped.
func (b *broker) publish(ch string, data []byte) bool {
	return b.out.add(ch, data)
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

// keySlot is Redis Cluster's slot of a key or channel: CRC16 (XMODEM) of the
// key, or of its {hash tag}, modulo 16384. go-redis has it only internally.
func keySlot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if n := strings.IndexByte(key[open+1:], '}'); n > 0 {
			key = key[open+1 : open+1+n]
		}
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
