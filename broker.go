package redisws

import (
	"context"
	"errors"
	"hash/maphash"
	"runtime"
	"sync"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
)

// brokers holds one broker per Redis configuration per process, shared by every
// handler instance (and so across config reloads) that names the same Redis.
var brokers = caddy.NewUsagePool()

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
	clientReadSlots = 8
	fillReadSlots   = 4
	// readSlotWait is how long a client's read waits for a slot before it
	// is answered as a history that cannot be read now: as long as an
	// upgrade may wait for its SUBSCRIBE (readyTimeout). 1 s refused a
	// third of 2,000 clients resuming at once on two nodes (bench/resume.sh).
	readSlotWait = 5 * time.Second
)

// errReadsBusy refuses a client's read when every slot stayed taken.
var errReadsBusy = errors.New("too many history reads at once")

// broker owns the Redis side for one Redis configuration: the subscriber
// connections, whose channels are the union of every hub's channels, and
// the publisher, and this node's presence. With one server, Sentinel, or a
// cluster in classic Pub/Sub mode there is one subscriber connection; with
// sharded Pub/Sub on a cluster there is one per master that owns a wanted
// channel. It must not hold anything of the config that created it (logger,
// context): it outlives that config across reloads.
type broker struct {
	client   redis.UniversalClient
	cluster  *redis.ClusterClient // set when channels are sharded
	avail    *availability
	table    *channelTable
	out      *outbox
	presence *presenceTracker

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the router, the connections and the fan-out workers
	routeWake chan struct{}  // sharded: channels wait for the router; cap 1

	// fanout are the fan-out workers' queues; a channel always goes to the
	// same worker, which keeps its messages in order.
	fanout []chan delivery

	// clientReads and fillReads hold a token per history read running.
	clientReads chan struct{}
	fillReads   chan struct{}
}

func newBroker(setup *redisSetup) *broker {
	ctx, cancel := context.WithCancel(context.Background())
	b := &broker{
		client:    setup.client(),
		avail:     newAvailability(setup.describe()),
		ctx:       ctx,
		cancel:    cancel,
		routeWake: make(chan struct{}, 1),

		clientReads: make(chan struct{}, clientReadSlots),
		fillReads:   make(chan struct{}, fillReadSlots),
	}
	var single *subConn
	if setup.sharded {
		b.cluster = b.client.(*redis.ClusterClient)
	} else {
		single = newSubConn(b, "", nil)
	}
	b.table = newChannelTable(b.avail, single, b.routeWake)
	b.out = startOutbox(ctx, b.client, setup.sharded, b.table)
	b.presence = newPresenceTracker(ctx, &b.wg, b.client, setup.sharded)
	b.startFanout()
	b.wg.Add(1)
	if single != nil {
		go single.run()
	} else {
		go b.router()
	}
	return b
}

// Destruct implements caddy.Destructor; the pool calls it when the last
// handler using this Redis configuration is gone.
func (b *broker) Destruct() error {
	b.cancel()
	b.wg.Wait()
	b.out.wait()
	return b.client.Close()
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
		ready := b.table.readyChan(ch)
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

// readForClient reads the history for a client's request, once one of the
// clients' slots is free within readSlotWait.
func (b *broker) readForClient(ctx context.Context, ch string, q historyQuery) (*historyRead, error) {
	timer := time.NewTimer(readSlotWait)
	defer timer.Stop()
	select {
	case b.clientReads <- struct{}{}:
	case <-timer.C:
		return nil, errReadsBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-b.clientReads }()
	return readHistory(ctx, b.client, ch, q)
}

// subscribed follows a channel whose subscription Redis confirmed. One with
// history reads what it missed, or its first position (resumeHistory). One
// without, whose subscription was lost with its connection, may have
// missed messages: its hubs apply their gap_policy. The first channel of a
// lost connection to be back, on whatever connection now serves it, counts
// the reconnect and the gap.
func (b *broker) subscribed(st *channelState, back resubscribed) {
	if back == lostFirstBack {
		metrics.redisReconnects.Inc()
		metrics.gaps.Inc()
	}
	if h := st.history.Load(); h != nil {
		b.resumeHistory(st, h)
		return
	}
	if back != notLost {
		b.gapChannel(st)
	}
}

// publish queues a client frame for Redis, binary or text (binary false:
// text, or what its bytes say), recorded in the channel's history when hist
// is set; false means it was dropped. onRefused hears when Redis refuses it
// for the sender (too many new channels).
func (b *broker) publish(ch string, data []byte, binary bool, hist *historyOptions, onRefused func(error)) bool {
	return b.out.add(ch, data, binary, hist, nil, onRefused)
}

// publishWaiting is publish for a caller that waits on ack for the outcome.
func (b *broker) publishWaiting(ch string, data []byte, binary bool, hist *historyOptions, ack *publishAck) bool {
	return b.out.add(ch, data, binary, hist, ack, nil)
}

// delivery is one message on its way to the hubs of its channel.
type delivery struct {
	hubs []receiver
	m    *frame.Message
}

// dispatch hands one Redis message to the fan-out worker of its channel, so
// that the subscriber goes back to reading Redis while the message is fanned
// out; a message of a channel with history goes through its record
// (dispatchHistory) first. It never waits for a client, and takes no lock
// but the channel's history's.
func (b *broker) dispatch(rm *redis.Message) {
	metrics.messages.Inc()
	st := b.table.lookup(rm.Channel)
	if st == nil || len(st.hubList()) == 0 {
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
func (b *broker) enqueue(st *channelState, m *frame.Message) {
	d := delivery{hubs: st.hubList(), m: m}
	select {
	case b.fanout[maphash.String(fanoutSeed, st.name)%uint64(len(b.fanout))] <- d:
	case <-b.ctx.Done():
	}
}

var fanoutSeed = maphash.MakeSeed()

// startFanout starts one fan-out worker per CPU; channels are hashed onto
// them.
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
				h.deliver(d.m)
			}
		case <-b.ctx.Done():
			return
		}
	}
}
