package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

// TestQueryChannelsCluster: on Cluster (sharded Pub/Sub), a stream follows
// channels chosen in its query, whose slots are on several masters, and its
// Last-Event-ID resumes them all on the other node.
func TestQueryChannelsCluster(t *testing.T) {
	cl := startCluster(t, 3, 0)
	config := feedSite("", "{\n\t\t\taddrs {$SEEDS}\n\t\t\tcluster\n\t\t}", "")
	env := map[string]string{"SEEDS": cl.Seeds(), "JWT_SECRET": testkit.TestSecret}
	ns := []*caddyNode{startNode(t, "node1", config, env), startNode(t, "node2", config, env)}
	alice := userToken(t, "alice", time.Hour)
	channels := []string{"room:a", "room:b", "user:alice"}
	owners := map[*redisServer]bool{}
	for _, ch := range channels {
		owners[cl.Owner(t, ch)] = true
	}
	t.Logf("the %d channels are on %d masters", len(channels), len(owners))

	s := dialSSE(t, ns[0].URL(feedQuery(alice, channels...)), nil)
	var want []string
	publish := func(round string) {
		for i := range 9 {
			ch := channels[i%len(channels)]
			body := fmt.Sprintf("%s/%s/%d", ch, round, i)
			postTo(t, ns[1], alice, ch, body)
			want = append(want, body)
		}
	}
	publish("live")
	var got []string
	for _, e := range s.Collect(t, len(want), wait) {
		got = append(got, e.Data)
	}
	if !slices.Equal(got, want) { // live, one publisher: in order across channels too
		t.Fatalf("live: got %q; want %q", got, want)
	}
	last := s.LastID()
	s.Close()
	publish("missed")
	again := dialSSE(t, ns[1].URL(feedQuery(alice, channels...)), http.Header{"Last-Event-ID": {last}})
	defer again.Close()
	got = got[:0]
	for _, e := range again.Collect(t, 9, wait) {
		got = append(got, e.Data)
	}
	for _, ch := range channels {
		if g, w := ofChannel(got, ch), ofChannel(want[9:], ch); !slices.Equal(g, w) {
			t.Fatalf("resumed on node2, channel %s: got %q; want %q", ch, g, w)
		}
	}
	again.ExpectNothing(t, 200*time.Millisecond)
}
