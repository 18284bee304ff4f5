package e2e

// The failover drill: Sentinel, and a Cluster with sharded Pub/Sub, whose
// master is SIGKILLed while its replica lags (stopped, its link cut, while
// the master takes more recorded messages). Two nodes with history, raw and
// envelope subscribers on both, steady recorded traffic from both nodes.
// Afterwards every entry the new master holds must have reached every
// subscriber (a frame the outbox sent again may come twice: once from the
// lost master, once from the new one), no position may have been seen with
// two payloads, and a resume from a position the new master does not hold
// must answer recovered:false. REDISWS_FAILOVER_RUNS repeats it.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
)

func TestFailoverDrillSentinel(t *testing.T) {
	for run := 1; run <= envInt(t, "REDISWS_FAILOVER_RUNS", 1); run++ {
		t.Run(fmt.Sprint("run-", run), func(t *testing.T) {
			s := startSentinels(t)
			d := &failoverDrill{
				redis:  "addrs {$ADDRS}\n\t\t\tmaster_name mymaster",
				env:    map[string]string{"ADDRS": s.Addrs()},
				rooms:  []string{"room:a"},
				live:   "live:a",
				master: s.Master,
				replica: func(t *testing.T) *redisServer {
					return s.Replica
				},
				promoted: func(t *testing.T) {
					testkit.Eventually(t, 60*time.Second, func() bool { return s.MasterAddr(t) == s.Replica.Addr }, "sentinels did not promote the replica")
				},
				newMaster: func(t *testing.T) redis.Cmdable { return s.Replica.Client(t) },
			}
			d.run(t)
		})
	}
}

func TestFailoverDrillCluster(t *testing.T) {
	for run := 1; run <= envInt(t, "REDISWS_FAILOVER_RUNS", 1); run++ {
		t.Run(fmt.Sprint("run-", run), func(t *testing.T) {
			cl := startCluster(t, 3, 1)
			// The other shards serve while one has no master (by default a
			// cluster refuses every command then), so that the drill sees
			// whether the nodes hold back the other rooms.
			for _, n := range cl.Nodes {
				if err := cl.client(t, n).ConfigSet(context.Background(), "cluster-require-full-coverage", "no").Err(); err != nil {
					t.Fatal(err)
				}
			}
			rooms := cl.ChannelsPerShard(t, "room:", 3, 1)
			victim := cl.Owner(t, rooms[0])
			live := ""
			for i := 0; live == ""; i++ {
				if ch := "live:" + strconv.Itoa(i); cl.Owner(t, ch) == victim {
					live = ch
				}
			}
			var replica *redisServer
			d := &failoverDrill{
				redis:  "addrs {$ADDRS}\n\t\t\tcluster",
				env:    map[string]string{"ADDRS": cl.Seeds()},
				rooms:  rooms,
				live:   live,
				master: victim,
				replica: func(t *testing.T) *redisServer {
					replica = cl.replicaOf(t, victim)
					return replica
				},
				promoted: func(t *testing.T) {
					cl.WaitOK(t)
					if o := cl.Owner(t, rooms[0]); o != replica {
						t.Fatalf("%s took over the slot, not the replica %s", o.Addr, replica.Addr)
					}
				},
				newMaster: func(t *testing.T) redis.Cmdable {
					rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Fields(cl.Seeds())})
					t.Cleanup(func() { _ = rdb.Close() })
					return rdb
				},
			}
			d.run(t)
		})
	}
}

// replicaOf returns the replica of master.
func (c *clusterSetup) replicaOf(t *testing.T, master *redisServer) *redisServer {
	t.Helper()
	for _, n := range c.Nodes {
		role, err := c.client(t, n).Do(context.Background(), "ROLE").Slice()
		if err == nil && len(role) >= 3 && role[0] == "slave" && fmt.Sprint(role[2]) == strconv.Itoa(master.Port) {
			return n
		}
	}
	t.Fatalf("no replica of %s", master.Addr)
	return nil
}

// failoverDrill is one topology's drill; rooms[0] is on the master that is
// killed, the other rooms on other masters.
type failoverDrill struct {
	redis     string // the lines of the redis block
	env       map[string]string
	rooms     []string
	live      string // a channel without history on the killed master
	master    *redisServer
	replica   func(t *testing.T) *redisServer // the one that takes over
	promoted  func(t *testing.T)              // waits until the replica is the master
	newMaster func(t *testing.T) redis.Cmdable

	nodes []*caddyNode
	subs  map[string][]*drillSub    // by room
	sends map[string][]*drillSender // by room
}

const (
	victimRate = 100 // messages/s from each node in the room whose master is killed
	otherRate  = 25  // in the other rooms
	lagSends   = 40  // messages each node sends to the victim room while the replica lags
)

func (d *failoverDrill) run(t *testing.T) {
	config := siteCaddyfile("", `
	redis_ws /rooms/* {
		subscribe room:{http.request.uri.path.1}
		publish room:{http.request.uri.path.1}
		redis {
			`+d.redis+`
		}
		history 10000 1h
	}
	redis_ws /live/* {
		subscribe live:{http.request.uri.path.1}
		redis {
			`+d.redis+`
		}
		gap_policy close
	}`)
	d.nodes = []*caddyNode{startNode(t, "node1", config, d.env), startNode(t, "node2", config, d.env)}
	d.subs, d.sends = map[string][]*drillSub{}, map[string][]*drillSender{}
	var live []*wsClient
	for _, n := range d.nodes {
		for _, room := range d.rooms {
			url := n.WSURL("/rooms/" + strings.TrimPrefix(room, "room:"))
			env := dialEnvelope(t, url)
			expectSubscribed(t, env, room)
			d.subs[room] = append(d.subs[room], startDrillSub(t, dialWS(t, url, nil)), startDrillSub(t, env))
		}
		live = append(live, dialWS(t, n.WSURL("/live/"+strings.TrimPrefix(d.live, "live:")), nil))
	}
	base := make([]int, len(d.nodes)) // the senders' connections are closed before the count is checked
	for i, n := range d.nodes {
		base[i] = ownGoroutines(n.goroutineDump(t))
	}
	for i, n := range d.nodes { // once every subscriber is there
		for j, room := range d.rooms {
			rate := otherRate
			if j == 0 {
				rate = victimRate
			}
			url := n.WSURL("/rooms/" + strings.TrimPrefix(room, "room:"))
			d.sends[room] = append(d.sends[room], startDrillSender(t, dialWS(t, url, nil), fmt.Sprintf("%s|%d|", room, i+1), rate))
		}
	}
	for _, room := range d.rooms {
		d.flowing(t, room, wait, "before the failover")
	}
	d.flowingAfter(t, d.rooms[0], victimRate, "before the failover")

	// The replica lags: stopped, its link cut by the master, while the
	// master takes more messages and the nodes deliver them.
	replica := d.replica(t)
	replica.Signal(t, syscall.SIGSTOP)
	stopped := true
	defer func() {
		if stopped {
			replica.Signal(t, syscall.SIGCONT)
		}
	}()
	mc := d.master.Client(t)
	if err := mc.ClientKillByFilter(context.Background(), "TYPE", "replica").Err(); err != nil {
		t.Fatalf("cutting the replica's link: %v", err)
	}
	testkit.Eventually(t, wait, func() bool {
		info, err := mc.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "connected_slaves:0")
	}, "the master still has its replica")
	cut := map[string]int64{} // what each sender had sent when the link was cut
	for _, s := range d.sends[d.rooms[0]] {
		cut[s.prefix] = s.sent.Load()
	}
	d.flowingAfter(t, d.rooms[0], lagSends, "while the replica lags")
	d.master.Kill(t)
	killed := time.Now()
	// A shard down holds back its own channels only: the other rooms flow
	// while the replica is still stopped.
	for _, room := range d.rooms[1:] {
		d.flowing(t, room, wait, "in a room of another shard while the replica is stopped")
	}
	replica.Signal(t, syscall.SIGCONT)
	stopped = false
	d.promoted(t)
	d.flowing(t, d.rooms[0], 60*time.Second, "after the failover")
	recovery := time.Since(killed)
	d.flowingAfter(t, d.rooms[0], victimRate, "after the recovery")
	for _, ss := range d.sends {
		for _, s := range ss {
			s.halt(t)
			s.c.Close()
		}
	}

	for _, c := range live {
		if code, _ := c.WaitClosed(t, wait); code != fanout.CloseGap {
			t.Fatalf("%s: a channel without history whose subscription was lost: close code %d, want %d (gap_policy close)", c.URL, code, fanout.CloseGap)
		}
	}
	rdb := d.newMaster(t)
	lost, dups := 0, 0
	positions := map[frame.Position]string{} // what every envelope client saw at each position
	for _, room := range d.rooms {
		held := readStream(t, rdb, room)
		for _, s := range d.subs[room] {
			got := s.until(t, held.entries[len(held.entries)-1].Payload)
			l, dup := got.check(t, s, held, positions, cut)
			lost, dups = max(lost, l), dups+dup
		}
		if room == d.rooms[0] {
			d.checkResumes(t, room, held, positions)
		}
	}
	for i, n := range d.nodes {
		m := scrapeMetrics(t, n)
		if m["caddy_redis_ws_gaps_total"] < 1 || m["caddy_redis_ws_redis_reconnects_total"] < 1 {
			t.Fatalf("%s: gaps %v, reconnects %v after a subscription was lost; want at least 1 each",
				n.Name, m["caddy_redis_ws_gaps_total"], m["caddy_redis_ws_redis_reconnects_total"])
		}
		if lost > 0 && m["caddy_redis_ws_gaps_unfillable_total"] < 1 {
			t.Fatalf("%s: %d messages lost to replication but no unfillable gap counted", n.Name, lost)
		}
		var dump string
		testkit.Eventually(t, wait, func() bool { dump = n.goroutineDump(t); return ownGoroutines(dump) <= base[i] },
			"%s: the module's goroutines did not go back to %d:\n%v", n.Name, base[i], atFailure(func() any { return dump }))
	}
	t.Logf("failover with a lagging replica: %d recorded messages lost to replication (delivered, not in the new master's stream), traffic back %s after the kill, %d duplicates over %d subscribers; every entry of the new master delivered to all",
		lost, recovery.Round(time.Millisecond), dups, 2*len(d.nodes)*len(d.rooms))
}

// ownGroup tells whether a goroutine group of a dump runs the module's code:
// the root package's or one of its internal packages'.
func ownGroup(group string) bool {
	return strings.Contains(group, "caddy-redis-ws/caddy-redis-ws.") || strings.Contains(group, "caddy-redis-ws/caddy-redis-ws/internal/")
}

// ownGoroutines counts the goroutines of a pprof dump (debug=1) that run
// this module's code. The others are Caddy's and go-redis's, which starts
// goroutines of its own for each cluster node it meets (a promoted replica).
func ownGoroutines(dump string) int {
	total := 0
	for _, group := range strings.Split(dump, "\n\n") {
		var n int
		if _, err := fmt.Sscanf(group, "%d @", &n); err == nil && ownGroup(group) {
			total += n
		}
	}
	return total
}

// flowing waits until every subscriber of room received a message that each
// sender of the room sends from now on.
func (d *failoverDrill) flowing(t *testing.T, room string, timeout time.Duration, what string) {
	t.Helper()
	d.waitBeyond(t, room, 1, timeout, what)
}

// flowingAfter waits until each sender of room sent n more messages and
// every subscriber got them.
func (d *failoverDrill) flowingAfter(t *testing.T, room string, n int, what string) {
	t.Helper()
	d.waitBeyond(t, room, n, wait, what)
}

func (d *failoverDrill) waitBeyond(t *testing.T, room string, n int, timeout time.Duration, what string) {
	t.Helper()
	marks := map[string]int64{}
	for _, s := range d.sends[room] {
		marks[s.prefix] = s.sent.Load() + int64(n)
	}
	testkit.Eventually(t, timeout, func() bool {
		for _, sub := range d.subs[room] {
			for prefix, mark := range marks {
				if sub.highest(prefix) < mark {
					return false
				}
			}
		}
		return true
	}, "%s: traffic does not flow %s", room, what)
}

// checkResumes resumes from the first and the last position a client saw
// that the new master does not hold: the history lost them, so the answer
// must be recovered:false.
func (d *failoverDrill) checkResumes(t *testing.T, room string, held heldStream, seen map[frame.Position]string) {
	t.Helper()
	var first, last frame.Position
	for p, payload := range seen {
		if held.has(p, payload) {
			continue
		}
		if first.Epoch == "" || p.Offset < first.Offset {
			first = p
		}
		if p.Offset > last.Offset {
			last = p
		}
	}
	if first.Epoch == "" {
		return // nothing was lost
	}
	url := d.nodes[0].WSURL("/rooms/" + strings.TrimPrefix(room, "room:"))
	for _, p := range []frame.Position{first, last} {
		c := dialEnvelope(t, sinceURL(url, p.Epoch, p.Offset))
		s := expectSubscribed(t, c, room)
		if s.Recovered == nil || *s.Recovered {
			t.Fatalf("since %s, a position the new master does not hold (lost to replication): %v; want recovered:false", p, s)
		}
		c.Close()
	}
}

// heldStream is what the new master holds of a channel.
type heldStream struct {
	epoch   string
	entries []bus.Entry
}

func readStream(t *testing.T, rdb redis.Cmdable, ch string) heldStream {
	t.Helper()
	keys := bus.HistoryKeys(ch)
	epoch, err := rdb.HGet(context.Background(), keys[0], "e").Result()
	if err != nil {
		t.Fatalf("HGET %s e: %v", keys[0], err)
	}
	xs, err := rdb.XRange(context.Background(), keys[1], "-", "+").Result()
	if err != nil || len(xs) == 0 {
		t.Fatalf("XRANGE %s: %d entries, %v", keys[1], len(xs), err)
	}
	h := heldStream{epoch: epoch}
	for _, x := range xs {
		off, _ := strconv.ParseInt(strings.TrimSuffix(x.ID, "-0"), 10, 64)
		payload, _ := x.Values["d"].(string)
		h.entries = append(h.entries, bus.Entry{Offset: off, Payload: payload})
	}
	return h
}

func (h heldStream) has(p frame.Position, payload string) bool {
	if p.Epoch != h.epoch {
		return false
	}
	for _, e := range h.entries {
		if e.Offset == p.Offset {
			return e.Payload == payload
		}
	}
	return false
}

// drillSender sends "<prefix><n>" for n = 1, 2, … at a steady rate until
// halted.
type drillSender struct {
	c      *wsClient
	prefix string
	sent   atomic.Int64
	stop   chan struct{}
	done   chan struct{}
	err    error // valid after done
}

func startDrillSender(t *testing.T, c *wsClient, prefix string, rate int) *drillSender {
	s := &drillSender{c: c, prefix: prefix, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for n := int64(1); n <= 100_000; n++ {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			if s.err = c.TrySend(websocket.TextMessage, []byte(s.prefix+strconv.FormatInt(n, 10))); s.err != nil {
				return
			}
			s.sent.Store(n)
		}
	}()
	t.Cleanup(s.halt0)
	return s
}

func (s *drillSender) halt0() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

func (s *drillSender) halt(t *testing.T) {
	t.Helper()
	s.halt0()
	if s.err != nil {
		t.Fatalf("sender %s stopped at %d: %v", s.prefix, s.sent.Load(), s.err)
	}
}

// drillSub records what a subscriber receives, on its own goroutine.
type drillSub struct {
	c        *wsClient
	envelope bool

	mu   sync.Mutex
	got  []drillMsg
	high map[string]int64 // the highest number received from each sender
	stop chan struct{}
	done chan struct{}
}

type drillMsg struct {
	pos     frame.Position // envelope clients only
	payload string
}

func startDrillSub(t *testing.T, c *wsClient) *drillSub {
	s := &drillSub{c: c, envelope: c.Conn.Subprotocol() != "", high: map[string]int64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go s.record()
	t.Cleanup(func() { close(s.stop); <-s.done })
	return s
}

func (s *drillSub) record() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		m, r := s.c.pop(time.Now().Add(50 * time.Millisecond))
		if r == popClosed {
			return
		}
		if r != popMessage {
			continue
		}
		dm := drillMsg{payload: string(m.Data)}
		if s.envelope {
			e, err := readEnvelope(m.Data)
			if err != nil || e.Type != protocol.TypeMessage {
				continue // presence or subscribed frames: none expected after the first
			}
			dm = drillMsg{pos: frame.Position{Epoch: e.Epoch, Offset: e.offset()}, payload: e.data()}
		}
		prefix, n := splitNumbered(dm.payload)
		s.mu.Lock()
		s.got = append(s.got, dm)
		s.high[prefix] = max(s.high[prefix], n)
		s.mu.Unlock()
	}
}

// splitNumbered splits "<prefix><n>" after its last "|".
func splitNumbered(payload string) (string, int64) {
	i := strings.LastIndexByte(payload, '|')
	n, _ := strconv.ParseInt(payload[i+1:], 10, 64)
	return payload[:i+1], n
}

func (s *drillSub) highest(prefix string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.high[prefix]
}

// until waits until payload arrived and returns everything received.
func (s *drillSub) until(t *testing.T, payload string) received {
	t.Helper()
	var got []drillMsg
	testkit.Eventually(t, wait, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, m := range s.got {
			if m.payload == payload {
				got = append(got, s.got...)
				return true
			}
		}
		return false
	}, "%s: the new master's last entry %q never arrived", s.c.URL, payload)
	return got
}

type received []drillMsg

// check asserts that every entry held reached the subscriber once (at most
// twice when the first came from the lost master: a frame sent again), that
// an envelope client's positions never go back within an epoch and that no
// position carries two payloads. It returns the messages received that
// were sent after the replica's link was cut (cut: each sender's count then)
// and that the new master does not hold: lost to replication; and the
// duplicates.
func (got received) check(t *testing.T, s *drillSub, held heldStream, seen map[frame.Position]string, cut map[string]int64) (lost, dups int) {
	t.Helper()
	count := map[string]int{}
	for _, m := range got {
		count[m.payload]++
	}
	want := map[string]int{}
	for _, e := range held.entries {
		want[e.Payload]++
	}
	for _, e := range held.entries {
		switch n := count[e.Payload]; {
		case n < want[e.Payload]:
			t.Fatalf("%s: %q (offset %d of %s in the new master) arrived %d times, want %d: skipped",
				s.c.URL, e.Payload, e.Offset, held.epoch, n, want[e.Payload])
		case n > want[e.Payload]+1:
			t.Fatalf("%s: %q arrived %d times", s.c.URL, e.Payload, n)
		}
	}
	for p, n := range count {
		prefix, seq := splitNumbered(p)
		switch {
		case want[p] == 0 && seq > cut[prefix]:
			lost++
		case want[p] > 0 && n > want[p]:
			dups += n - want[p]
		}
	}
	if !s.envelope {
		return lost, dups
	}
	last := map[string]int64{}
	for _, m := range got {
		if prev, ok := seen[m.pos]; ok && prev != m.payload {
			t.Fatalf("%s: position %s seen with %q and with %q", s.c.URL, m.pos, prev, m.payload)
		}
		seen[m.pos] = m.payload
		if m.pos.Offset <= last[m.pos.Epoch] {
			t.Fatalf("%s: offset %d of %s after %d", s.c.URL, m.pos.Offset, m.pos.Epoch, last[m.pos.Epoch])
		}
		last[m.pos.Epoch] = m.pos.Offset
	}
	return lost, dups
}
