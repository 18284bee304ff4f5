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
	"syscall"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
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
