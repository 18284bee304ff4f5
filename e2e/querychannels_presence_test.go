package e2e

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

// TestQueryChannelsPresence: a presence GET answers for the channels its
// channel= names under the rule a stream follows them by (allow subscribe,
// with the user's placeholder), beside the route's own: a stream that
// follows room:a through its query is seen there from another node, and a
// channel nobody is in answers empty without a key written in Redis.
func TestQueryChannelsPresence(t *testing.T) {
	rs := startRedis(t)
	nodes := []*caddyNode{feedNode(t, "node1", rs, "", nil), feedNode(t, "node2", rs, "", nil)}
	alice, bob := userToken(t, "alice", time.Hour), userToken(t, "bob", time.Hour)
	db := rs.Client(t)

	before := db.DBSize(t.Context()).Val()
	status, a, body := queryPresence(t, nodes[1].URL("/feed?channel=room:never&channel=user:bob"), bearer(bob))
	if c, ok := a.Channels["room:never"]; status != http.StatusOK || !ok || c.Connections != 0 || len(c.Users) != 0 {
		t.Fatalf("presence of an empty room: %d %s", status, body)
	}
	if _, ok := a.Channels["feed"]; !ok || len(a.Channels) != 3 {
		t.Fatalf("presence answers %s; want feed, room:never and user:bob", body)
	}
	if after := db.DBSize(t.Context()).Val(); after != before {
		t.Fatalf("a presence GET wrote %d keys", after-before)
	}

	s := dialSSE(t, nodes[0].URL("/feed?access_token="+alice+"&channel=room:a"), nil)
	defer s.Close()
	var last string
	testkit.Eventually(t, wait, func() bool {
		status, a, body := queryPresence(t, nodes[1].URL("/feed?channel=room:a"), bearer(bob))
		last = body
		return status == http.StatusOK && slices.Equal(a.Channels["room:a"].Users, []string{"alice"})
	}, "alice in room:a from node2: %v", atFailure(func() any { return last }))
	// bob's own channel is his, not alice's.
	if status, _, body := queryPresence(t, nodes[1].URL("/feed?channel=user:alice"), bearer(bob)); status != http.StatusForbidden {
		t.Fatalf("bob asks user:alice's presence: %d %s; want 403", status, body)
	}
}
