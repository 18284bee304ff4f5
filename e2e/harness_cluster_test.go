package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/redis/go-redis/v9"
)

type clusterSetup struct {
	Nodes []*redisServer // the first ones were created masters, the rest replicas

	mu      sync.Mutex
	clients map[*redisServer]*redis.Client
}

// Seeds returns every node's address, space-separated for a Caddyfile.
func (c *clusterSetup) Seeds() string {
	var a []string
	for _, n := range c.Nodes {
		a = append(a, n.Addr)
	}
	return strings.Join(a, " ")
}

// startCluster starts masters+masters*replicas cluster-enabled servers,
// creates the cluster with redis-cli --cluster create, and waits until every
// node reports cluster_state:ok and every replica synced.
func startCluster(t testing.TB, masters, replicas int) *clusterSetup {
	t.Helper()
	c := new(clusterSetup)
	var addrs []string
	for range masters * (1 + replicas) {
		n := startRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "1000", "--cluster-replica-validity-factor", "0")
		c.Nodes = append(c.Nodes, n)
		addrs = append(addrs, n.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK(t)
	for _, n := range c.Nodes {
		if info, err := c.client(t, n).Info(context.Background(), "replication").Result(); err == nil && strings.Contains(info, "role:slave") {
			waitSynced(t, c.client(t, n))
		}
	}
	return c
}

// WaitOK waits until every running node says cluster_state:ok and they all
// agree on the owners of all slots, which are running nodes.
func (c *clusterSetup) WaitOK(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	testkit.Eventually(t, 60*time.Second, func() bool {
		var owners string
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			info, err := c.client(t, n).ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
			slots := c.slotOwners(t, n)
			if slots == "" || (owners != "" && slots != owners) {
				return false
			}
			owners = slots
		}
		return true
	}, "cluster not ok")
}

// slotOwners describes which address serves each slot range, as n sees it.
func (c *clusterSetup) slotOwners(t testing.TB, n *redisServer) string {
	t.Helper()
	//lint:ignore SA1019 the cluster helpers read the CLUSTER SLOTS table (each slot range with its master first), which Redis 7 still answers
	slots, err := c.client(t, n).ClusterSlots(context.Background()).Result()
	if err != nil {
		return ""
	}
	total := 0
	var b strings.Builder
	for _, s := range slots {
		total += s.End - s.Start + 1
		fmt.Fprintf(&b, "%d-%d:%s ", s.Start, s.End, s.Nodes[0].Addr)
		for _, m := range c.Nodes {
			if m.Addr == s.Nodes[0].Addr && !m.Running() {
				return "" // a dead master still owns slots
			}
		}
	}
	if total != 16384 {
		return ""
	}
	return b.String()
}

// Owner returns the node that serves channel ch's slot now, as a running
// node sees it.
func (c *clusterSetup) Owner(t testing.TB, ch string) *redisServer {
	t.Helper()
	return c.owner(t, c.slotTable(t), ch)
}

// slotTable returns CLUSTER SLOTS as the first running node that answers
// sees it.
func (c *clusterSetup) slotTable(t testing.TB) []redis.ClusterSlot {
	t.Helper()
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		//lint:ignore SA1019 the cluster helpers read the CLUSTER SLOTS table (each slot range with its master first), which Redis 7 still answers
		if slots, err := c.client(t, n).ClusterSlots(context.Background()).Result(); err == nil {
			return slots
		}
	}
	t.Fatal("no cluster node answers CLUSTER SLOTS")
	return nil
}

func (c *clusterSetup) owner(t testing.TB, slots []redis.ClusterSlot, ch string) *redisServer {
	t.Helper()
	slot := bus.KeySlot(ch)
	for _, s := range slots {
		if slot >= s.Start && slot <= s.End {
			for _, m := range c.Nodes {
				if m.Addr == s.Nodes[0].Addr {
					return m
				}
			}
		}
	}
	t.Fatalf("no owner found for %q (slot %d)", ch, slot)
	return nil
}

// client returns one assertion client per node for the cluster's life.
func (c *clusterSetup) client(t testing.TB, n *redisServer) *redis.Client {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.clients == nil {
		c.clients = make(map[*redisServer]*redis.Client)
	}
	if cl := c.clients[n]; cl != nil {
		return cl
	}
	cl := n.Client(t)
	c.clients[n] = cl
	return cl
}

// ChannelsPerShard returns names with the given prefix, perShard of them on
// each of the masters.
func (c *clusterSetup) ChannelsPerShard(t testing.TB, prefix string, masters, perShard int) []string {
	t.Helper()
	slots := c.slotTable(t)
	buckets := map[*redisServer]int{}
	var out []string
	for i := 0; len(out) < masters*perShard && i < 100000; i++ {
		ch := prefix + strconv.Itoa(i)
		o := c.owner(t, slots, ch)
		if buckets[o] < perShard {
			buckets[o]++
			out = append(out, ch)
		}
	}
	if len(out) != masters*perShard {
		t.Fatalf("could not spread %d channels over %d masters: %v", masters*perShard, masters, buckets)
	}
	return out
}

// SPublish sends SPUBLISH to the owner of ch and returns its receiver count.
func (c *clusterSetup) SPublish(t testing.TB, ch, msg string) int64 {
	t.Helper()
	n, err := c.client(t, c.Owner(t, ch)).SPublish(context.Background(), ch, msg).Result()
	if err != nil {
		t.Fatalf("SPUBLISH %s: %v", ch, err)
	}
	return n
}

// ShardNumSub returns the sharded subscribers of ch in its shard: PUBSUB
// SHARDNUMSUB summed over every running node (other shards have none). A
// replica serves SSUBSCRIBE for its master's slots, and an old master that
// is demoted keeps its subscribers, who still get the messages.
func (c *clusterSetup) ShardNumSub(t testing.TB, ch string) int64 {
	t.Helper()
	var total int64
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		m, err := c.client(t, n).PubSubShardNumSub(context.Background(), ch).Result()
		if err != nil {
			t.Fatalf("PUBSUB SHARDNUMSUB %s on %s: %v", ch, n.Addr, err)
		}
		total += m[ch]
	}
	return total
}

// Masters lists the running masters, as the slot table says.
func (c *clusterSetup) Masters(t testing.TB) []*redisServer {
	t.Helper()
	var out []*redisServer
	for _, s := range c.slotTable(t) {
		for _, n := range c.Nodes {
			if n.Addr == s.Nodes[0].Addr && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// MigrateSlot moves a slot and its keys from one master to another while
// clients use it, as redis-cli --cluster reshard does: IMPORTING on the
// target, MIGRATING on the source, MIGRATE of every key, then SETSLOT NODE
// on every master.
func (c *clusterSetup) MigrateSlot(t testing.TB, slot int, from, to *redisServer) {
	t.Helper()
	ctx := context.Background()
	src, dst := c.client(t, from), c.client(t, to)
	srcID, err1 := src.Do(ctx, "CLUSTER", "MYID").Text()
	dstID, err2 := dst.Do(ctx, "CLUSTER", "MYID").Text()
	if err := errors.Join(err1, err2,
		dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err(),
		src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err()); err != nil {
		t.Fatalf("preparing the migration of slot %d: %v", slot, err)
	}
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, slot, 100).Result()
		if err != nil {
			t.Fatalf("CLUSTER GETKEYSINSLOT %d: %v", slot, err)
		}
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", "127.0.0.1", to.Port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		if err := src.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("MIGRATE %v: %v", keys, err)
		}
	}
	for _, m := range append([]*redisServer{to, from}, c.Masters(t)...) {
		if err := c.client(t, m).Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err(); err != nil {
			t.Fatalf("CLUSTER SETSLOT %d NODE on %s: %v", slot, m.Addr, err)
		}
	}
}

// sentinelAndCluster are the set-ups a feature is tested on beyond one
// server: each starts its Redis and gives the lines of a redis block for it
// and the environment they read.
var sentinelAndCluster = []struct {
	name  string
	redis func(t *testing.T) (block string, env map[string]string)
}{
	{"sentinel", func(t *testing.T) (string, map[string]string) {
		s := startSentinels(t)
		return "addrs {$ADDRS}\n\t\t\tmaster_name mymaster", map[string]string{"ADDRS": s.Addrs()}
	}},
	{"cluster", func(t *testing.T) (string, map[string]string) {
		cl := startCluster(t, 3, 0)
		return "addrs {$ADDRS}\n\t\t\tcluster", map[string]string{"ADDRS": cl.Seeds()}
	}},
}
