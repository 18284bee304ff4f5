package e2e

import (
	"strconv"
	"strings"
	"testing"

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
