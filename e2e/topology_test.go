package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

// Tests of the Redis topologies: Sentinel and Cluster failovers, each with
// real redis-server processes and Caddy nodes.

// Sentinel: two nodes, three sentinels, a master and a replica. The master is
// killed; traffic flows again through the new master on both nodes, with no
// restart of Caddy. Then a SENTINEL FAILOVER moves the master back.
func TestSentinelFailover(t *testing.T) {
	s := startSentinels(t)
	config := siteCaddyfile("", `
	redis_ws /ws chat {
		redis {
			addrs {$SENTINELS}
			master_name mymaster
		}
	}`)
	env := map[string]string{"SENTINELS": s.Addrs()}
	ns := []*caddyNode{startNode(t, "node1", config, env), startNode(t, "node2", config, env)}
	clients := []*wsClient{dialWS(t, ns[0].WSURL("/ws"), nil), dialWS(t, ns[1].WSURL("/ws"), nil)}
	testkit.Eventually(t, wait, func() bool { return numsub(t, s.Master.Client(t), "chat") == 2 }, "nodes did not subscribe on the master")
	tr := startTraffic(clients)
	defer tr.halt()
	tr.flowing(t, wait, "before the failover")

	killed := time.Now()
	s.Master.Kill(t)
	testkit.Eventually(t, 60*time.Second, func() bool { return s.MasterAddr(t) == s.Replica.Addr }, "sentinels did not promote the replica")
	promoted := time.Since(killed)
	tr.flowing(t, 60*time.Second, "after the master was killed")
	recovered := time.Since(killed)
	var gaps []string
	for i, l := range tr.logs {
		gaps = append(gaps, fmt.Sprintf("client %d: %s", i+1, l.gap(killed.Add(-time.Second)).Round(time.Millisecond)))
	}
	t.Logf("sentinel failover (kill): replica promoted after %s, traffic on both nodes after %s; longest gap without deliveries: %s",
		promoted.Round(time.Millisecond), recovered.Round(time.Millisecond), strings.Join(gaps, ", "))
	if numsub(t, s.Replica.Client(t), "chat") != 2 {
		t.Fatal("nodes are not subscribed on the new master")
	}
	for _, n := range ns {
		testkit.Eventually(t, wait, func() bool { return countLines(n.Logs(), `"info"`, "redis subscription restored") == 1 }, "%s: no info on recovery", n.Name)
		if got := countLines(n.Logs(), "redis subscription lost"); got != 1 {
			t.Fatalf("%s: %d warnings for one failover, want 1", n.Name, got)
		}
	}

	// The old master comes back as a replica; a planned failover moves the
	// master back to it.
	s.Master.Restart(t)
	testkit.Eventually(t, 60*time.Second, func() bool {
		role, err := s.Master.Client(t).Do(context.Background(), "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "slave"
	}, "the old master did not rejoin as a replica")
	// A sentinel refreshes a replica's state every few seconds and aborts a
	// failover that finds no good replica: ask again until the master moved.
	// Not more often than a failover takes, lest a second one moves it back.
	sentinel := s.Sentinels[0].Client(t)
	var asked time.Time
	testkit.Eventually(t, 60*time.Second, func() bool {
		if s.MasterAddr(t) == s.Master.Addr {
			return true
		}
		if time.Since(asked) > 10*time.Second {
			asked = time.Now()
			_ = sentinel.Do(context.Background(), "SENTINEL", "FAILOVER", s.MasterName).Err()
		}
		return false
	}, "planned failover did not happen")
	switched := time.Now()
	tr.flowing(t, 60*time.Second, "after SENTINEL FAILOVER")
	t.Logf("sentinel failover (planned): traffic on both nodes %s after the switch; longest gap: %s",
		time.Since(switched).Round(time.Millisecond), tr.logs[0].gap(switched).Round(time.Millisecond))
	for _, n := range ns {
		onlyJSONLogs(t, n)
	}
}

// Cluster with sharded Pub/Sub: rooms on every shard work at once through
// two nodes, each node subscribes on the master that owns each room, and
// traffic resumes by itself when a master dies and its replica takes over,
// and again when a planned CLUSTER FAILOVER moves the slots back (Redis then
// sunsubscribes the channels on the demoted master). A third node in
// classic mode interoperates with redis-cli publish.
func TestClusterShardedPubSub(t *testing.T) {
	const masters = 3
	cl := startCluster(t, masters, 1)
	channels := cl.ChannelsPerShard(t, "room:", masters, 2)
	config := siteCaddyfile("", `
	redis_ws /rooms/* {
		subscribe room:{http.request.uri.path.1}
		publish room:{http.request.uri.path.1}
		redis {
			addrs {$SEEDS}
			cluster
		}
	}
	redis_ws /lobby lobby {
		redis {
			addrs {$SEEDS_REVERSED}
			cluster
			pubsub sharded
		}
	}`)
	var reversed []string
	for i := len(cl.Nodes) - 1; i >= 0; i-- {
		reversed = append(reversed, cl.Nodes[i].Addr)
	}
	env := map[string]string{"SEEDS": cl.Seeds(), "SEEDS_REVERSED": strings.Join(reversed, " ")}
	ns := []*caddyNode{startNode(t, "node1", config, env), startNode(t, "node2", config, env)}

	var clients []*wsClient
	for _, ch := range channels {
		room := strings.TrimPrefix(ch, "room:")
		for _, n := range ns {
			clients = append(clients, dialWS(t, n.WSURL("/rooms/"+room), nil))
		}
	}
	ctx := context.Background()
	for _, ch := range channels {
		testkit.Eventually(t, wait, func() bool { return cl.ShardNumSub(t, ch) == 2 }, "%s: want 2 sharded subscribers on its owner", ch)
		if n, err := cl.client(t, cl.Owner(t, ch)).PubSubNumSub(ctx, ch).Result(); err != nil || n[ch] != 0 {
			t.Fatalf("%s: classic subscribers %v %v; want none", ch, n, err)
		}
	}
	// Each node holds one subscriber connection per master, none elsewhere,
	// shared by both handlers (same Redis, seeds in another order), and a
	// reload keeps them.
	lobby := []*wsClient{dialWS(t, ns[0].WSURL("/lobby"), nil), dialWS(t, ns[1].WSURL("/lobby"), nil)}
	testkit.Eventually(t, wait, func() bool { return cl.ShardNumSub(t, "lobby") == 2 }, "lobby not subscribed")
	slots := cl.slotTable(t)
	ids := map[string][]string{}
	for _, rs := range cl.Nodes {
		want := 0
		for _, s := range slots {
			if s.Nodes[0].Addr == rs.Addr {
				want = 2
			}
		}
		ids[rs.Addr] = subscriberIDs(t, cl.client(t, rs))
		if got := len(ids[rs.Addr]); got != want {
			t.Fatalf("%s: %d subscriber connections, want %d", rs.Addr, got, want)
		}
	}
	ns[0].Reload(t, strings.Replace(config, "redis_ws /lobby", "respond /health 200\n\tredis_ws /lobby", 1))
	for _, rs := range cl.Nodes {
		if got := subscriberIDs(t, cl.client(t, rs)); fmt.Sprint(got) != fmt.Sprint(ids[rs.Addr]) {
			t.Fatalf("%s: subscriber connections changed across a reload: %v → %v", rs.Addr, ids[rs.Addr], got)
		}
	}
	lobby[0].SendText(t, "lobby")
	for _, c := range lobby {
		if m := c.Next(t, wait); string(m.Data) != "lobby" {
			t.Fatalf("lobby: got %v", m)
		}
	}
	// Every room, both ways: a client frame and an SPUBLISH reach both nodes.
	// counted: SPUBLISH on the master counts both nodes' subscribers, which
	// holds unless they may be on a replica of it.
	check := func(what string, counted bool) {
		t.Helper()
		for i, ch := range channels {
			a, b := clients[2*i], clients[2*i+1]
			msg := fmt.Sprintf("%s %s", what, ch)
			a.SendText(t, msg)
			for _, c := range []*wsClient{a, b} {
				if m := c.Next(t, wait); string(m.Data) != msg {
					t.Fatalf("%s: got %v, want %q", ch, m, msg)
				}
			}
			if got := cl.SPublish(t, ch, "s"+msg); counted && got != 2 {
				t.Fatalf("%s: SPUBLISH reached %d subscribers, want 2", ch, got)
			}
			for _, c := range []*wsClient{a, b} {
				if m := c.Next(t, wait); string(m.Data) != "s"+msg {
					t.Fatalf("%s: got %v, want %q", ch, m, "s"+msg)
				}
			}
		}
	}
	check("before", true)

	// Kill the master of the first room; its replica takes over.
	victim := cl.Owner(t, channels[0])
	killed := time.Now()
	victim.Kill(t)
	cl.WaitOK(t)
	for _, ch := range channels {
		testkit.Eventually(t, 60*time.Second, func() bool { return cl.ShardNumSub(t, ch) == 2 }, "%s: not resubscribed after the failover", ch)
	}
	t.Logf("cluster failover: replica promoted and every room resubscribed %s after the kill", time.Since(killed).Round(time.Millisecond))
	check("after kill", true)
	for _, n := range ns {
		testkit.Eventually(t, wait, func() bool { return countLines(n.Logs(), `"info"`, "redis subscription restored") == 1 }, "%s: no info on recovery", n.Name)
		if got := countLines(n.Logs(), "redis subscription lost"); got != 1 {
			t.Fatalf("%s: %d warnings for one failover, want 1", n.Name, got)
		}
	}

	// The old master returns as a replica; CLUSTER FAILOVER on it moves the
	// slots back, and Redis sunsubscribes the demoted master's subscribers.
	victim.Restart(t)
	testkit.Eventually(t, 60*time.Second, func() bool {
		role, err := cl.client(t, victim).Do(ctx, "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "slave"
	}, "the old master did not rejoin as a replica")
	testkit.Eventually(t, 60*time.Second, func() bool {
		info, err := cl.client(t, victim).Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	}, "the old master did not sync")
	if err := cl.client(t, victim).Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
		t.Fatalf("CLUSTER FAILOVER: %v", err)
	}
	testkit.Eventually(t, 60*time.Second, func() bool { return cl.Owner(t, channels[0]) == victim }, "planned failover did not happen")
	cl.WaitOK(t)
	// A node may stay subscribed on the demoted master, now a replica: it
	// gets the shard's messages (Redis propagates SPUBLISH to the replicas),
	// but SPUBLISH on the master does not count it.
	for _, ch := range channels {
		testkit.Eventually(t, 60*time.Second, func() bool { return cl.ShardNumSub(t, ch) == 2 }, "%s: not resubscribed after the planned failover", ch)
	}
	check("after planned failover", false)

	// Classic mode: PUBLISH is broadcast cluster-wide, so redis-cli publish
	// on any node reaches the clients.
	classic := startNode(t, "node-classic", siteCaddyfile("", `
	redis_ws /ws chat {
		redis {
			addrs {$SEEDS}
			cluster
			pubsub classic
		}
	}`), env)
	c := dialWS(t, classic.WSURL("/ws"), nil)
	if err := cl.client(t, cl.Nodes[len(cl.Nodes)-1]).Publish(ctx, "chat", "classic").Err(); err != nil {
		t.Fatal(err)
	}
	if m := c.Next(t, wait); string(m.Data) != "classic" {
		t.Fatalf("got %v", m)
	}
	c.SendText(t, "from classic client")
	if m := c.Next(t, wait); string(m.Data) != "from classic client" {
		t.Fatalf("got %v", m)
	}
}
