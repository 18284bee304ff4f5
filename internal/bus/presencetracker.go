package bus

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

const (
	// presenceFlushEvery is how often the tracker sends what changed: joins
	// and leaves reach Redis within it, and a burst of connections costs
	// one update per channel.
	presenceFlushEvery = 100 * time.Millisecond
	// presenceRetry is how long a channel waits after a failed update.
	presenceRetry = time.Second
)

// PresenceTracker is a broker's presence: per channel, the connections of
// this node and how many of them each user has, kept in Redis as one entry
// per node and channel and one per user and channel, so that what Redis
// stores and refreshes grows with nodes × channels × users, not with
// connections. Hubs change it under mu; its one goroutine (run) is the only
// writer to Redis, every presenceFlushEvery.
type PresenceTracker struct {
	ctx     context.Context // the broker's
	wg      *sync.WaitGroup // the broker's: it waits for run
	client  redis.UniversalClient
	sharded bool
	node    string // this process's id in Redis

	mu       sync.Mutex
	channels map[string]*presenceChannel
	running  bool
}

// presenceChannel is one channel's presence on this node.
type presenceChannel struct {
	timeout    time.Duration        // of the route that joined it last
	leaveDelay time.Duration        // likewise
	conns      int                  // connections here, anonymous ones too
	users      map[string]int       // connections here per named user
	leaving    map[string]time.Time // users with none left here: taken out at that time
	reported   map[string]bool      // users Redis has for this node
	changes    uint64               // joins and leaves here so far
	sent       uint64               // changes that Redis has taken in
	full       bool                 // Redis may not know this node: send everything
	refreshAt  time.Time            // the next heartbeat
	retryAt    time.Time            // after a failed update
}

// PresenceOptions are the settings of a route's presence that the tracker
// applies to its channels.
type PresenceOptions struct {
	Timeout    time.Duration // a node's entries expire after it
	LeaveDelay time.Duration // a user stays present after its last connection left
}

func NewPresenceTracker(ctx context.Context, wg *sync.WaitGroup, client redis.UniversalClient, sharded bool) *PresenceTracker {
	return &PresenceTracker{ctx: ctx, wg: wg, client: client, sharded: sharded, node: newNodeID(), channels: make(map[string]*presenceChannel)}
}

// Join counts a connection of user ("" anonymous) in ch. The first join
// starts the tracker's goroutine.
func (t *PresenceTracker) Join(ch, user string, p *PresenceOptions) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.running {
		t.running = true
		t.wg.Add(1)
		go t.run()
	}
	pc := t.channels[ch]
	if pc == nil {
		pc = &presenceChannel{users: make(map[string]int), leaving: make(map[string]time.Time), reported: make(map[string]bool), full: true}
		t.channels[ch] = pc
		Metrics.presenceChannels.Inc()
	}
	pc.timeout, pc.leaveDelay = p.Timeout, p.LeaveDelay
	pc.changes++
	pc.conns++
	if user != "" {
		pc.users[user]++
		delete(pc.leaving, user) // back within the delay: no leave
	}
}

// Leave undoes join; the user stays present for the leave delay.
func (t *PresenceTracker) Leave(ch, user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pc := t.channels[ch]
	if pc == nil {
		return
	}
	pc.changes++
	pc.conns--
	if user == "" {
		return
	}
	if pc.users[user]--; pc.users[user] > 0 {
		return
	}
	delete(pc.users, user)
	if pc.reported[user] {
		pc.leaving[user] = time.Now().Add(pc.leaveDelay)
	}
}

// run flushes until the broker stops. A node that stops leaves its entries
// to expire: its clients, reconnecting to other nodes within the timeout,
// make no leave and no join.
func (t *PresenceTracker) run() {
	defer t.wg.Done()
	tick := time.NewTicker(presenceFlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.flush(t.ctx)
		case <-t.ctx.Done():
			return
		}
	}
}

// flush sends one update per channel that has something to say, in one
// pipeline, and takes in the outcome.
func (t *PresenceTracker) flush(ctx context.Context) {
	now := time.Now()
	t.mu.Lock()
	var updates []presenceUpdate
	for ch, pc := range t.channels {
		if u, ok := pc.pending(ch, now); ok {
			updates = append(updates, u)
		}
	}
	t.mu.Unlock()
	if len(updates) == 0 {
		return
	}
	results := t.send(ctx, updates)
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, u := range updates {
		t.apply(u, results[i], now)
	}
}

// pending is the update ch needs now, if any.
func (pc *presenceChannel) pending(ch string, now time.Time) (presenceUpdate, bool) {
	if now.Before(pc.retryAt) {
		return presenceUpdate{}, false
	}
	var due map[string]bool // leaving users whose delay is over
	for user, at := range pc.leaving {
		if !now.Before(at) {
			if due == nil {
				due = make(map[string]bool)
			}
			due[user] = true
		}
	}
	if !pc.full && pc.changes == pc.sent && due == nil && now.Before(pc.refreshAt) {
		return presenceUpdate{}, false // nothing to say: the usual case
	}
	u := presenceUpdate{channel: ch, mode: "update", changes: pc.changes, conns: pc.conns, timeout: pc.timeout}
	if pc.full {
		u.mode = "full"
		for user := range pc.users {
			u.add = append(u.add, user)
		}
		for user := range pc.leaving {
			if !due[user] {
				u.add = append(u.add, user)
			}
		}
	} else {
		for user := range pc.users {
			if !pc.reported[user] {
				u.add = append(u.add, user)
			}
		}
		for user := range due {
			u.remove = append(u.remove, user)
		}
	}
	if pc.conns == 0 && len(pc.users) == 0 && len(pc.leaving) == len(due) {
		u.mode = "gone"
		u.add = nil
		u.remove = u.remove[:0]
		for user := range pc.reported {
			u.remove = append(u.remove, user)
		}
		return u, true
	}
	return u, true
}

// apply takes in the outcome of u: 1 done, 0 the node must send everything,
// an error to retry.
func (t *PresenceTracker) apply(u presenceUpdate, res int64, sent time.Time) {
	pc := t.channels[u.channel]
	before := len(pc.reported)
	defer func() { Metrics.presenceUsers.Add(float64(len(pc.reported) - before)) }()
	switch {
	case res < 0:
		pc.full, pc.retryAt = true, sent.Add(presenceRetry)
		return
	case res == 0:
		pc.full = true
		return
	}
	if u.mode == "full" {
		clear(pc.reported)
	}
	for _, user := range u.add {
		pc.reported[user] = true
		if _, leaving := pc.leaving[user]; pc.users[user] == 0 && !leaving {
			pc.leaving[user] = sent.Add(pc.leaveDelay) // it left while the update was on its way
		}
	}
	for _, user := range u.remove {
		delete(pc.reported, user)
		if pc.users[user] == 0 {
			delete(pc.leaving, user)
		}
	}
	pc.full, pc.sent, pc.refreshAt = false, u.changes, sent.Add(pc.timeout/3)
	if u.mode == "full" {
		for user := range pc.leaving { // taken out by the full update: not held any more
			if !pc.reported[user] {
				delete(pc.leaving, user)
			}
		}
	}
	if u.mode == "gone" {
		if pc.conns == 0 && len(pc.users) == 0 {
			delete(t.channels, u.channel)
			Metrics.presenceChannels.Dec()
			return
		}
		pc.full = true // a connection came meanwhile
	}
}

// send runs the updates in one pipeline; a result is 1, 0 (send
// everything) or -1 (failed: nothing changed).
func (t *PresenceTracker) send(ctx context.Context, updates []presenceUpdate) []int64 {
	ctx, cancel := context.WithTimeout(ctx, presenceQueryTimeout)
	defer cancel()
	results := make([]int64, len(updates))
	todo := make([]int, len(updates))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; len(todo) > 0 && attempt < 2; attempt++ {
		cmds, _ := t.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range todo {
				u := &updates[i]
				p.EvalSha(ctx, presenceUpdateScript.Hash(), PresenceKeys(u.channel), u.args(t.node, t.sharded)...)
			}
			return nil
		})
		var again []int
		for k, c := range cmds {
			i := todo[k]
			n, err := c.(*redis.Cmd).Int64()
			results[i] = n
			switch {
			case err == nil:
			case strings.HasPrefix(err.Error(), "NOSCRIPT"):
				results[i], again = -1, append(again, i)
			default:
				results[i] = -1
				Metrics.presenceErrors.Inc()
				logger().Debug("presence update failed", zap.String("channel", updates[i].channel), zap.Error(err))
			}
		}
		// Redis lost its scripts (a restart, a failover): load it, and send
		// those again.
		if len(again) > 0 && presenceUpdateScript.Load(ctx, t.client).Err() != nil {
			Metrics.presenceErrors.Add(float64(len(again)))
			break
		}
		todo = again
	}
	return results
}
