package bus

import (
	"context"
	"errors"
	"hash/maphash"
	"runtime"
	"sync"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/redis/go-redis/v9"
)

const (
	// readyTimeout bounds how long an upgrade waits for Redis to confirm a new
	// channel's SUBSCRIBE before it goes ahead anyway.
	readyTimeout = 5 * time.Second
	// fanoutQueue is how many messages a fan-out worker may have waiting
	// before the subscriber waits for it.
	fanoutQueue = 1024

	// History reads that run at once on a node, for clients and for the
	// node's gap fills. A read holds a connection of go-redis's pool (10
	// per CPU, which publishing and presence need too) and up to its byte
	// budget of reply, and Redis runs one script at a time: beyond a few at
	// once, reads only wait in Redis while holding both. Clients and fills
	// have slots of their own, so that clients resuming in a storm cannot
	// hold up a fill, nor the fills of every channel after a reconnect make
	// clients wait.
	ClientReadSlots = 8
	fillReadSlots   = 4
	// readSlotWait is how long a client's read waits for a slot before it
	// is answered as a history that cannot be read now: as long as an
	// upgrade may wait for its SUBSCRIBE (readyTimeout). 1 s refused a
	// third of 2,000 clients resuming at once on two nodes (bench/resume.sh).
	readSlotWait = 5 * time.Second
)

// ErrReadsBusy refuses a client's read when every slot stayed taken.
var ErrReadsBusy = errors.New("too many history reads at once")

// Broker owns the Redis side for one Redis configuration: the subscriber
// connections, whose channels are the union of every hub's channels, and
// the publisher, and this node's presence. With one server, Sentinel, or a
// cluster in classic Pub/Sub mode there is one subscriber connection; with
// sharded Pub/Sub on a cluster there is one per master that owns a wanted
// channel. It must not hold anything of the config that created it (logger,
// context): it outlives that config across reloads.
type Broker struct {
	Client   redis.UniversalClient
	cluster  *redis.ClusterClient // set when channels are sharded
	avail    *availability
	Table    *ChannelTable
	out      *Outbox
	Presence *PresenceTracker

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup // every goroutine of the broker: see Close
	routeWake chan struct{}  // sharded: channels wait for the router; cap 1

	// fanout are the fan-out workers' queues; a channel always goes to the
	// same worker, which keeps its messages in order.
	fanout []chan delivery

	// ClientReads and fillReads hold a token per history read running.
	ClientReads chan struct{}
	fillReads   chan struct{}
}

// BrokerOptions are what a broker is made of: its Redis client, which it
// owns from then on, and the name of that Redis for the logs.
type BrokerOptions struct {
	Client  redis.UniversalClient // a *redis.ClusterClient when sharded
	Sharded bool                  // a cluster with sharded Pub/Sub
	Name    string                // the Redis, without credentials
}

func NewBroker(opts BrokerOptions) *Broker {
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		Client:    opts.Client,
		avail:     NewAvailability(opts.Name),
		ctx:       ctx,
		cancel:    cancel,
		routeWake: make(chan struct{}, 1),

		ClientReads: make(chan struct{}, ClientReadSlots),
		fillReads:   make(chan struct{}, fillReadSlots),
	}
	var single *SubConn
	if opts.Sharded {
		b.cluster = b.Client.(*redis.ClusterClient)
	} else {
		single = NewSubConn(b, "", nil)
	}
	b.Table = NewChannelTable(b.avail, single, b.routeWake)
	b.out = StartOutbox(ctx, &b.wg, b.Client, opts.Sharded, b.Table)
	b.Presence = NewPresenceTracker(ctx, &b.wg, b.Client, opts.Sharded)
	b.startFanout()
	b.wg.Add(1)
	if single != nil {
		go single.run()
	} else {
		go b.router()
	}
	return b
}

// Close stops every goroutine of the broker (all in its WaitGroup: the
// subscriber connections, the router, the fan-out workers, the fills, the
// outbox and the presence tracker), waits for them, and closes its client.
func (b *Broker) Close() error {
	b.cancel()
	b.wg.Wait()
	return b.Client.Close()
}

// WaitReady waits until Redis has confirmed the subscription of every channel,
// so that a client that is told it is connected misses nothing published
// after. During an outage it does not wait: the client is served anyway and
// its channels are subscribed when Redis is back. A failed connection
// releases the waiters of its channels, so the wait is short either way.
func (b *Broker) WaitReady(ctx context.Context, channels []string) {
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	for _, ch := range channels {
		ready := b.Table.ReadyChan(ch)
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

// ReadForClient reads the history for a client's request, once one of the
// clients' slots is free within readSlotWait.
func (b *Broker) ReadForClient(ctx context.Context, ch string, q HistoryQuery) (*HistoryRead, error) {
	timer := time.NewTimer(readSlotWait)
	defer timer.Stop()
	select {
	case b.ClientReads <- struct{}{}:
	case <-timer.C:
		return nil, ErrReadsBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-b.ClientReads }()
	return readHistory(ctx, b.Client, ch, q)
}

// ReadPresence reads who is in channels, on every node (at most maxUsers
// listed per channel).
func (b *Broker) ReadPresence(ctx context.Context, channels []string, maxUsers int) (map[string]PresenceCount, error) {
	return ReadPresence(ctx, b.Client, channels, maxUsers)
}

// Outage tells whether Redis is known to be out of reach.
func (b *Broker) Outage() bool { return b.avail.Outage() }

// subscribed follows a channel whose subscription Redis confirmed. One with
// history reads what it missed, or its first position (resumeHistory). One
// without, whose subscription was lost with its connection, may have
// missed messages: its hubs apply their gap_policy. The first channel of a
// lost connection to be back, on whatever connection now serves it, counts
// the reconnect and the gap.
func (b *Broker) subscribed(st *channelState, back resubscribed) {
	if back == lostFirstBack {
		Metrics.redisReconnects.Inc()
		Metrics.gaps.Inc()
	}
	if h := st.history.Load(); h != nil {
		b.resumeHistory(st, h)
		return
	}
	if back != notLost {
		b.gapChannel(st)
	}
}

// Publish queues a client frame for Redis, binary or text (binary false:
// text, or what its bytes say), recorded in the channel's history when hist
// is set; false means it was dropped. onRefused hears when Redis refuses it
// for the sender (too many new channels).
func (b *Broker) Publish(ch string, data []byte, binary bool, hist *HistoryOptions, onRefused func(error)) bool {
	return b.out.Add(ch, data, binary, hist, nil, onRefused)
}

// PublishWaiting is publish for a caller that waits on ack for the outcome.
func (b *Broker) PublishWaiting(ch string, data []byte, binary bool, hist *HistoryOptions, ack *PublishAck) bool {
	return b.out.Add(ch, data, binary, hist, ack, nil)
}

// delivery is one message on its way to the hubs of its channel.
type delivery struct {
	hubs []Receiver
	m    *frame.Message
}

// Dispatch hands one Redis message to the fan-out worker of its channel, so
// that the subscriber goes back to reading Redis while the message is fanned
// out; a message of a channel with history goes through its record
// (dispatchHistory) first. It never waits for a client, and takes no lock
// but the channel's history's.
func (b *Broker) Dispatch(rm *redis.Message) {
	Metrics.messages.Inc()
	st := b.Table.Lookup(rm.Channel)
	if st == nil || len(st.HubList()) == 0 {
		return
	}
	if base := st.presenceOf.Load(); base != nil {
		if m := presenceMessage(*base, rm.Channel, rm.Payload); m != nil {
			b.enqueue(st, m)
		}
		return
	}
	m := frame.ParseMessage(rm.Channel, rm.Payload)
	if h := st.history.Load(); h != nil {
		b.dispatchHistory(st, h, m)
		return
	}
	b.enqueue(st, m)
}

// enqueue hands m to the fan-out worker of its channel: one worker per
// channel keeps its messages in order.
func (b *Broker) enqueue(st *channelState, m *frame.Message) {
	d := delivery{hubs: st.HubList(), m: m}
	select {
	case b.fanout[maphash.String(fanoutSeed, st.name)%uint64(len(b.fanout))] <- d:
	case <-b.ctx.Done():
	}
}

var fanoutSeed = maphash.MakeSeed()

// startFanout starts one fan-out worker per CPU; channels are hashed onto
// them.
func (b *Broker) startFanout() {
	b.fanout = make([]chan delivery, runtime.GOMAXPROCS(0))
	for i := range b.fanout {
		b.fanout[i] = make(chan delivery, fanoutQueue)
		b.wg.Add(1)
		go b.deliverLoop(b.fanout[i])
	}
}

// deliverLoop is a fan-out worker.
func (b *Broker) deliverLoop(queue chan delivery) {
	defer b.wg.Done()
	for {
		select {
		case d := <-queue:
			for _, h := range d.hubs {
				h.Deliver(d.m)
			}
		case <-b.ctx.Done():
			return
		}
	}
}
