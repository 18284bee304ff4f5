package e2e

// Redis topologies: Sentinel (sentinels, master, replica) and Redis
// Cluster, all real redis-server processes on free loopback ports.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/redis/go-redis/v9"
)

type sentinelSetup struct {
	Master, Replica *redisServer
	Sentinels       []*redisServer
	MasterName      string
}

// Addrs returns the sentinels' addresses, space-separated for a Caddyfile.
func (s *sentinelSetup) Addrs() string {
	var a []string
	for _, r := range s.Sentinels {
		a = append(a, r.Addr)
	}
	return strings.Join(a, " ")
}

// sentinelRedis is the redis block of a route on a sentinelSetup, its
// sentinels' addresses in {$SENTINELS}.
const sentinelRedis = `redis {
			addrs {$SENTINELS}
			master_name mymaster
		}`

// noSyncDelay makes a master start a replica's diskless full sync at once
// instead of after 5 s (Redis 7's default), so that a replica holds the
// master's data before a test kills the master.
var noSyncDelay = []string{"--repl-diskless-sync-delay", "0"}

// waitSynced waits until a replica's link to its master is up: its first
// full sync is done.
func waitSynced(t testing.TB, replica *redis.Client) {
	t.Helper()
	testkit.Eventually(t, 60*time.Second, func() bool {
		info, err := replica.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	}, "replica %s did not sync with its master", replica.Options().Addr)
}

// startSentinels starts a master, a replica and three sentinels that
// monitor them (quorum 2; a master is down after 1s of silence), and waits
// until the replica synced and every sentinel knows the replica and the
// other sentinels.
func startSentinels(t testing.TB) *sentinelSetup {
	t.Helper()
	s := &sentinelSetup{MasterName: "mymaster"}
	s.Master = startRedis(t, noSyncDelay...)
	s.Replica = startRedis(t, append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(s.Master.Port)}, noSyncDelay...)...)
	waitSynced(t, s.Replica.Client(t))
	for range 3 {
		s.Sentinels = append(s.Sentinels, startSentinel(t, s.MasterName, s.Master.Port))
	}
	ctx := context.Background()
	for _, sn := range s.Sentinels {
		c := sn.Client(t)
		testkit.Eventually(t, wait, func() bool {
			m, err := c.Do(ctx, "SENTINEL", "MASTER", s.MasterName).Result()
			if err != nil {
				return false
			}
			info := fmt.Sprint(m)
			return strings.Contains(info, "num-slaves:1") && strings.Contains(info, "num-other-sentinels:2")
		}, "sentinel %s does not see the replica and the other sentinels", sn.Addr)
	}
	return s
}

func startSentinel(t testing.TB, master string, masterPort int) *redisServer {
	t.Helper()
	port := freePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
		"sentinel monitor %s 127.0.0.1 %d 2\n"+
		"sentinel down-after-milliseconds %s 1000\n"+
		"sentinel failover-timeout %s 10000\n"+
		"sentinel parallel-syncs %s 1\n", port, dir, master, masterPort, master, master, master)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &redisServer{
		Port: port,
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		args: []string{conf, "--sentinel"},
		dir:  dir,
		sink: &logSink{t: t, prefix: fmt.Sprintf("sentinel:%d", port)},
	}
	if err := r.Start(); err != nil {
		t.Fatalf("starting sentinel: %v", err)
	}
	t.Cleanup(func() {
		if err := r.kill(); err != nil {
			t.Errorf("sentinel:%d cleanup: %v", r.Port, err)
		}
		r.sink.silence()
	})
	return r
}

// MasterAddr asks a sentinel for the current master's address.
func (s *sentinelSetup) MasterAddr(t testing.TB) string {
	t.Helper()
	addr, err := s.Sentinels[0].Client(t).Do(context.Background(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName).StringSlice()
	if err != nil || len(addr) != 2 {
		t.Fatalf("SENTINEL GET-MASTER-ADDR-BY-NAME: %v %v", addr, err)
	}
	return net.JoinHostPort(addr[0], addr[1])
}
