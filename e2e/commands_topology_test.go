package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// TestCommandsReload: a reload that leaves the route unchanged keeps the
// channels a command client subscribed at run time, and the client goes on
// subscribing and unsubscribing.
func TestCommandsReload(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	config := siteCaddyfile("", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 100
		allow subscribe room:*
	}
	respond /health 200`)
	n := startNode(t, "node", config, map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
	c := dialCommands(t, n.WSURL("/ws"), nil)
	expectFrame(t, c, protocol.TypeSubscribed, 0, "chat")
	command(t, c, `"id":1,"cmd":"subscribe","channel":"room:r"`)
	expectFrame(t, c, protocol.TypeSubscribed, 1, "room:r")

	n.Reload(t, strings.Replace(config, "respond /health 200", "respond /health 200\n\trespond /other 204", 1))
	publish(t, rdb, "room:r", "after reload")
	expectMessage(t, c, "room:r", "after reload")
	command(t, c, `"id":2,"cmd":"subscribe","channel":"room:s"`)
	expectFrame(t, c, protocol.TypeSubscribed, 2, "room:s")
	command(t, c, `"id":3,"cmd":"unsubscribe","channel":"room:r"`)
	expectFrame(t, c, protocol.TypeUnsubscribed, 3, "room:r")
	publish(t, rdb, "room:r", "gone")
	publish(t, rdb, "room:s", "still here")
	expectMessage(t, c, "room:s", "still here")
}

// TestCommandsCluster: on a sharded Cluster, a command client on one node
// subscribes at run time to channels on every shard and gets what a client
// on the other node publishes there, recorded, and what SPUBLISH sends.
func TestCommandsCluster(t *testing.T) {
	cl := startCluster(t, 3, 0)
	config := siteCaddyfile("", `
	redis_ws /ws chat {
		redis {
			addrs {$SEEDS}
			cluster
		}
		history 100
		allow subscribe room:*
		allow publish room:*
	}`)
	env := map[string]string{"SEEDS": cl.Seeds()}
	ns := []*caddyNode{startNode(t, "node1", config, env), startNode(t, "node2", config, env)}
	a := dialCommands(t, ns[0].WSURL("/ws"), nil)
	expectFrame(t, a, protocol.TypeSubscribed, 0, "chat")
	b := dialCommands(t, ns[1].WSURL("/ws"), nil)
	expectFrame(t, b, protocol.TypeSubscribed, 0, "chat")
	for i, ch := range cl.ChannelsPerShard(t, "room:", 3, 1) {
		id := strconv.Itoa(i + 1)
		command(t, a, `"id":`+id+`,"cmd":"subscribe","channel":"`+ch+`"`)
		expectFrame(t, a, protocol.TypeSubscribed, uint64(i+1), ch)
		command(t, b, `"id":`+id+`,"cmd":"publish","channel":"`+ch+`","data":"hi `+ch+`"`)
		ack := expectFrame(t, b, protocol.TypePublished, uint64(i+1), ch)
		if f := expectMessage(t, a, ch, "hi "+ch); ack.Offset == nil || positionOf(f) != positionOf(ack) {
			t.Fatalf("%s: message at %s, acknowledged %s", ch, positionOf(f), frameString(ack))
		}
		testkit.Eventually(t, wait, func() bool { return cl.ShardNumSub(t, ch) >= 1 }, "a sharded subscriber of %s", ch)
		cl.SPublish(t, ch, "spublished")
		expectMessage(t, a, ch, "spublished")
	}
}

// TestCommandsSentinel: on Sentinel, two nodes: a command client on one
// follows a channel subscribed at run time and gets what a client on the
// other publishes, acknowledged with its offset; rewind and since resume
// it; presence answers both users on both nodes. Then the master is
// SIGKILLed: once the replica is promoted, an acknowledged publish reaches
// the follower, a since that spans the failover is recovered, and presence
// answers both users again.
func TestCommandsSentinel(t *testing.T) {
	s := startSentinels(t)
	config := siteCaddyfile("", `
	redis_ws /ws chat {
		`+sentinelRedis+`
		history 100
		allow subscribe room:*
		allow publish room:*
		presence {
			user {http.request.uri.query.name}
			leave_delay 0
		}
	}`)
	env := map[string]string{"SENTINELS": s.Addrs()}
	ns := []*caddyNode{startNode(t, "node1", config, env), startNode(t, "node2", config, env)}
	a := dialCommands(t, ns[0].WSURL("/ws?name=alice"), nil)
	expectFrame(t, a, protocol.TypeSubscribed, 0, "chat")
	b := dialCommands(t, ns[1].WSURL("/ws?name=bob"), nil)
	expectFrame(t, b, protocol.TypeSubscribed, 0, "chat")

	command(t, a, `"id":1,"cmd":"subscribe","channel":"room:s"`)
	expectFrame(t, a, protocol.TypeSubscribed, 1, "room:s")
	command(t, b, `"id":1,"cmd":"publish","channel":"room:s","data":"one"`)
	one := expectFrame(t, b, protocol.TypePublished, 1, "room:s")
	if f := expectMessage(t, a, "room:s", "one"); one.Offset == nil || *one.Offset != 1 || positionOf(f) != positionOf(one) {
		t.Fatalf("message at %s, acknowledged %s; want offset 1", positionOf(f), frameString(one))
	}
	command(t, b, `"id":2,"cmd":"subscribe","channel":"room:s","rewind":1`)
	expectFrame(t, b, protocol.TypeSubscribed, 2, "room:s")
	expectMessageAmidPresence(t, b, "room:s", "one")
	waitCommandPresence(t, a, 2, "room:s", "alice,bob")
	waitCommandPresence(t, b, 3, "room:s", "alice,bob")
	command(t, b, `"id":4,"cmd":"publish","channel":"room:s","data":"two"`)
	two := awaitAnswer(t, b, 4)
	if two.Type != protocol.TypePublished || two.Offset == nil || *two.Offset != 2 {
		t.Fatalf("publish two: %s, want offset 2", frameString(two))
	}
	expectMessageAmidPresence(t, a, "room:s", "two")

	// The replica holds both entries before its master dies.
	replica := s.Replica.Client(t)
	testkit.Eventually(t, wait, func() bool {
		return replica.XLen(context.Background(), bus.HistoryKeys("room:s")[1]).Val() == 2
	}, "the replica did not get room:s's history")
	s.Master.Kill(t)
	testkit.Eventually(t, 60*time.Second, func() bool { return s.MasterAddr(t) == s.Replica.Addr }, "sentinels did not promote the replica")
	// Publishes to a channel nobody follows until the new master takes one.
	id := uint64(10)
	testkit.Eventually(t, 60*time.Second, func() bool {
		id++
		command(t, b, `"id":`+strconv.FormatUint(id, 10)+`,"cmd":"publish","channel":"room:probe","data":"x"`)
		return awaitAnswer(t, b, id).Type == protocol.TypePublished
	}, "no publish acknowledged after the failover")
	command(t, b, `"id":100,"cmd":"publish","channel":"room:s","data":"three"`)
	three := awaitAnswer(t, b, 100)
	if three.Type != protocol.TypePublished || three.Offset == nil || *three.Offset != 3 {
		t.Fatalf("publish three: %s, want offset 3", frameString(three))
	}
	if f := expectMessageAmidPresence(t, a, "room:s", "three"); positionOf(f) != positionOf(three) {
		t.Fatalf("after the failover: three at %s, acknowledged at %s", positionOf(f), positionOf(three))
	}
	command(t, a, `"id":3,"cmd":"unsubscribe","channel":"room:s"`)
	awaitAnswer(t, a, 3)
	command(t, a, `"id":4,"cmd":"subscribe","channel":"room:s","since":"`+positionOf(one)+`"`)
	if f := awaitAnswer(t, a, 4); f.Type != protocol.TypeSubscribed || f.Recovered == nil || !*f.Recovered {
		t.Fatalf("resumed across the failover: %s, want recovered true", frameString(f))
	}
	expectMessageAmidPresence(t, a, "room:s", "two")
	expectMessageAmidPresence(t, a, "room:s", "three")
	waitCommandPresence(t, a, 5, "room:s", "alice,bob")
}
