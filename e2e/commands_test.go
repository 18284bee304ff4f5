package e2e

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// commandNodes runs n nodes whose /ws route takes a token and lets command
// clients subscribe to room:* and what their token names, and publish to
// room:*, with history.
func commandNodes(t *testing.T, rs *redisServer, n int) []*caddyNode {
	t.Helper()
	nodes := make([]*caddyNode, n)
	for i := range nodes {
		nodes[i] = startNode(t, "node"+strconv.Itoa(i+1), siteCaddyfile("", `
	redis_ws_token /ws {
		secret {$JWT_SECRET}
	}
	redis_ws /ws user:{http.auth.user.id} {
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 100
		allow subscribe room:* {http.auth.user.subscribe}
		allow publish room:*
	}
	respond /health 200`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port), "JWT_SECRET": testkit.TestSecret})
	}
	return nodes
}

// userBearer is the Authorization header of a token of user for an hour,
// granting subscribe.
func userBearer(t *testing.T, user string, subscribe ...string) http.Header {
	return bearer(grantToken(t, user, time.Hour, subscribe...))
}

// TestCommandsNodes: two nodes, one Redis, a balancer in front. A command client subscribes at
// run time to channels a route pattern and its token allow, and gets what
// redis-cli and a client on the other node publish, each message with its
// channel; what neither allows is refused; unsubscribe stops the channel;
// since and rewind resume a channel subscribed at run time.
func TestCommandsNodes(t *testing.T) {
	rs := startRedis(t)
	nodes := commandNodes(t, rs, 2)
	rdb := rs.Client(t)

	a := dialCommands(t, nodes[0].WSURL("/ws"), userBearer(t, "alice", "team:blue"))
	expectFrame(t, a, protocol.TypeSubscribed, 0, "user:alice") // the route's own
	command(t, a, `"id":1,"cmd":"subscribe","channel":"room:1"`)
	if f := expectFrame(t, a, protocol.TypeSubscribed, 1, "room:1"); f.Offset == nil || f.Recovered != nil {
		t.Fatalf("subscribed %s: want a position and no recovered", frameString(f))
	}
	command(t, a, `"id":2,"cmd":"subscribe","channel":"team:blue"`)
	expectFrame(t, a, protocol.TypeSubscribed, 2, "team:blue")
	command(t, a, `"id":3,"cmd":"subscribe","channel":"team:red"`)
	expectRefusal(t, a, 3, protocol.ErrForbidden)
	command(t, a, `"id":4,"cmd":"subscribe","channel":"team:red","token":"not.a.token"`)
	expectRefusal(t, a, 4, protocol.ErrInvalidToken)
	command(t, a, `"id":5,"cmd":"subscribe","channel":"team:blue"`)
	expectRefusal(t, a, 5, protocol.ErrAlreadySubscribed)

	publish(t, rdb, "team:blue", "from redis-cli")
	expectMessage(t, a, "team:blue", "from redis-cli")

	b := dialCommands(t, nodes[1].WSURL("/ws"), userBearer(t, "bob"))
	expectFrame(t, b, protocol.TypeSubscribed, 0, "user:bob")
	command(t, b, `"id":1,"cmd":"publish","channel":"room:1","data":"from bob"`)
	first := expectFrame(t, b, protocol.TypePublished, 1, "room:1")
	if first.Offset == nil || *first.Offset != 1 {
		t.Fatalf("published %s: want offset 1", frameString(first))
	}
	if f := expectMessage(t, a, "room:1", "from bob"); positionOf(f) != positionOf(first) {
		t.Fatalf("message at %s, acknowledged at %s", positionOf(f), positionOf(first))
	}
	command(t, b, `"id":2,"cmd":"publish","channel":"team:blue","data":"x"`)
	expectRefusal(t, b, 2, protocol.ErrForbidden)
	command(t, b, `"id":3,"cmd":"publish","channel":"user:alice","data":"x"`)
	expectRefusal(t, b, 3, protocol.ErrForbidden)

	command(t, a, `"id":6,"cmd":"unsubscribe","channel":"room:1"`)
	expectFrame(t, a, protocol.TypeUnsubscribed, 6, "room:1")
	command(t, b, `"id":4,"cmd":"publish","channel":"room:1","data":"after"`)
	expectFrame(t, b, protocol.TypePublished, 4, "room:1")
	publish(t, rdb, "team:blue", "marker")
	expectMessage(t, a, "team:blue", "marker") // and nothing of room:1 before it
	command(t, a, `"id":7,"cmd":"unsubscribe","channel":"room:1"`)
	expectRefusal(t, a, 7, protocol.ErrNotSubscribed)

	// Resumed from the first message: the second is replayed, then live.
	command(t, a, `"id":8,"cmd":"subscribe","channel":"room:1","since":"`+positionOf(first)+`"`)
	if f := expectFrame(t, a, protocol.TypeSubscribed, 8, "room:1"); f.Recovered == nil || !*f.Recovered {
		t.Fatalf("resumed %s: want recovered true", frameString(f))
	}
	expectMessage(t, a, "room:1", "after")
	command(t, b, `"id":5,"cmd":"publish","channel":"room:1","data":"live"`)
	expectFrame(t, b, protocol.TypePublished, 5, "room:1")
	expectMessage(t, a, "room:1", "live")

	// Rewind on the other node: the last two, then live.
	command(t, b, `"id":6,"cmd":"subscribe","channel":"room:1","rewind":2`)
	expectFrame(t, b, protocol.TypeSubscribed, 6, "room:1")
	expectMessage(t, b, "room:1", "after")
	expectMessage(t, b, "room:1", "live")
	publish(t, rdb, "room:1", "from redis-cli")
	expectMessage(t, b, "room:1", "from redis-cli")
	expectMessage(t, a, "room:1", "from redis-cli")

	// Through the balancer, an epoch that is not the channel's: not
	// recovered, live from now.
	lb := startExampleBalancer(t, nodes[0], nodes[1])
	c := dialCommands(t, lb.WSURL("/ws"), userBearer(t, "carol"))
	expectFrame(t, c, protocol.TypeSubscribed, 0, "user:carol")
	command(t, c, `"id":1,"cmd":"subscribe","channel":"room:1","since":"lost:3"`)
	if f := expectFrame(t, c, protocol.TypeSubscribed, 1, "room:1"); f.Recovered == nil || *f.Recovered {
		t.Fatalf("resumed from a lost epoch %s: want recovered false", frameString(f))
	}
	// b follows room:1 itself: its copy may come before or after the answer.
	command(t, b, `"id":7,"cmd":"publish","channel":"room:1","data":"to carol"`)
	if f := nextFrame(t, b); f.Type == protocol.TypeMessage {
		expectFrame(t, b, protocol.TypePublished, 7, "room:1")
	} else if f.Type != protocol.TypePublished || f.ID != 7 {
		t.Fatalf("got %s, want the answer to publish 7", frameString(f))
	}
	expectMessage(t, c, "room:1", "to carol")
}
