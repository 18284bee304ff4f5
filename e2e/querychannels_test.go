package e2e

// Channels chosen in the query: an event stream follows those its
// channel= values name and the route's allow subscribe permits, and resumes
// them all through any node with one Last-Event-ID; a POST publishes to the
// one its channel= names when allow publish permits it. Every hostile value
// is refused with its status, and a refused request writes nothing in Redis.

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
)

// feedSite is a route of its own channel feed, whose clients may follow
// any room and their own user channel, and publish to both, authenticated
// by redis_ws_token.
func feedSite(globals, redis, extra string) string {
	return siteCaddyfile(globals, `
	redis_ws_token /feed {
		secret {$JWT_SECRET}
		leeway 30s
	}
	redis_ws /feed feed {
		redis `+redis+`
		history 1000 1h
		presence
		allow subscribe room:* user:{http.auth.user.id}
		allow publish room:* user:{http.auth.user.id}
		`+extra+`
	}
	respond /health 200`)
}

func feedNode(t *testing.T, name string, rs *redisServer, extra string, env map[string]string) *caddyNode {
	t.Helper()
	return feedNodeWith(t, name, rs, "", extra, env)
}

func feedNodeWith(t *testing.T, name string, rs *redisServer, globals, extra string, env map[string]string) *caddyNode {
	t.Helper()
	all := map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port), "JWT_SECRET": testkit.TestSecret}
	for k, v := range env {
		all[k] = v
	}
	return startNode(t, name, feedSite(globals, "redis://127.0.0.1:{$REDIS_PORT}", extra), all)
}

// userToken is a token of user valid for d (negative: expired that long ago).
func userToken(t testing.TB, user string, d time.Duration) string {
	return testkit.HS256(t, jwt.MapClaims{"sub": user, "exp": time.Now().Add(d).Unix()})
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

// feedQuery is the query of a stream of alice's token and the channels.
func feedQuery(token string, channels ...string) string {
	q := url.Values{"access_token": {token}, "channel": channels}
	return "/feed?" + q.Encode()
}

// postTo publishes body to ch through n with token, and wants a 200.
func postTo(t *testing.T, n *caddyNode, token, ch, body string) postResult {
	t.Helper()
	r := postMessage(t, n.URL("/feed?channel="+url.QueryEscape(ch)), body, bearer(token))
	if r.Status != http.StatusOK || r.Answer.Channel != ch {
		t.Fatalf("POST to %s: %d %q; want 200 on that channel", ch, r.Status, r.Body)
	}
	return r.Answer
}

// TestQueryChannelsResumeThroughBalancer: an EventSource follows 3 channels
// chosen in its query through the balancer; its node is killed, and its
// Last-Event-ID resumes all 3 on the other node, every message once and in
// order within its channel.
func TestQueryChannelsResumeThroughBalancer(t *testing.T) {
	rs := startRedis(t)
	doomed := feedNode(t, "node1", rs, "", nil)
	port2 := freePort(t)
	lb := startNode(t, "lb", readExample(t, balancerCaddyfile), map[string]string{
		"NODE1": fmt.Sprintf("127.0.0.1:%d", doomed.Port),
		"NODE2": fmt.Sprintf("127.0.0.1:%d", port2),
	})
	alice := userToken(t, "alice", time.Hour)
	channels := []string{"room:a", "room:b", "user:alice"}
	es := startEventSource(t, lb.URL(feedQuery(alice, channels...)))
	testkit.Eventually(t, wait, func() bool {
		return scrapeMetrics(t, doomed)[`caddy_redis_ws_event_streams{handler="feed"}`] == 1 && es.LastID() != ""
	}, "the stream on node1 through the balancer")

	var want []string
	publish := func(n *caddyNode, round string) {
		for i := range 10 {
			ch := channels[i%len(channels)]
			body := fmt.Sprintf("%s/%s/%d", ch, round, i)
			postTo(t, n, alice, ch, body)
			want = append(want, body)
		}
	}
	publish(doomed, "before")
	waitChannelData(t, es, channels, want)

	survivor := feedNode(t, "node2", rs, "", map[string]string{"PORT": strconv.Itoa(port2)})
	testkit.Eventually(t, wait, func() bool { // the balancer's health check found node2
		r := postMessage(t, lb.URL("/feed?channel=room:probe"), "probe", bearer(alice))
		return r.Status == 200 && scrapeMetrics(t, survivor)[`caddy_redis_ws_http_publishes_total{code="200",handler="feed"}`] > 0
	}, "the balancer does not send requests to node2")
	doomed.Kill(t)
	publish(survivor, "after") // while the EventSource reconnects
	waitChannelData(t, es, channels, want)
	if n := es.Streams(); n != 2 {
		t.Fatalf("%d streams, want 2", n)
	}
	testkit.Eventually(t, wait, func() bool {
		return scrapeMetrics(t, survivor)[`caddy_redis_ws_event_streams{handler="feed"}`] == 1
	}, "the resumed stream is on node2")
}

// waitChannelData waits until es got every one of want, each once; the
// events of each channel (a body starts with its channel) come in the
// order published, whatever the order across channels (a resume replays
// channel by channel).
func waitChannelData(t *testing.T, es *eventSource, channels, want []string) {
	t.Helper()
	var got []string
	testkit.Eventually(t, wait, func() bool {
		got = got[:0]
		for _, e := range es.Events() {
			got = append(got, e.Data)
		}
		return len(got) >= len(want)
	}, "events: got %d of %d", len(got), len(want))
	for _, ch := range channels {
		if g, w := ofChannel(got, ch), ofChannel(want, ch); !slices.Equal(g, w) {
			t.Fatalf("channel %s: got %q; want %q", ch, g, w)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events %q; want %d", len(got), got, len(want))
	}
}

func ofChannel(data []string, ch string) []string {
	var out []string
	for _, d := range data {
		if strings.HasPrefix(d, ch+"/") {
			out = append(out, d)
		}
	}
	return out
}

// TestQueryChannelsRefused: every hostile channel= value of a stream, a
// presence GET and a POST is refused with its status and a reason, before anything is asked
// of Redis: no key is created. Duplicates are folded.
func TestQueryChannelsRefused(t *testing.T) {
	rs := startRedis(t)
	// Caddy answers 431 to a request line and headers beyond 16 KiB
	// before any handler runs; 1 MB lets 10,000 channel= reach redis_ws.
	node := feedNodeWith(t, "node", rs, "servers {\n\t\tmax_header_size 1MB\n\t}", "max_channels 4", nil)
	alice := userToken(t, "alice", time.Hour)
	many := func(n int, name func(int) string) string {
		var b strings.Builder
		for i := range n {
			b.WriteString("&channel=" + name(i))
		}
		return b.String()
	}
	long := strings.Repeat("x", 256) // room:+long passes the server's 256-byte limit
	cases := []struct {
		query  string
		status int
		reason string
	}{
		{"channel=", 400, "channel name is empty"},
		{"channel=redis_ws:{room:a}:history", 400, "reserved"},
		{"channel=redis_ws%3Ax", 400, "reserved"},
		{"channel=room:a%00", 400, "control character"},
		{"channel=room:a%0d%0aX-Injected:%201", 400, "control character"},
		{"channel=room:%1b[31m", 400, "control character"},
		{"channel=room:%ff", 400, "not valid UTF-8"},
		{"channel=room:" + long, 400, "the limit is 256"},
		{"channel=room:a%zz", 400, "malformed"},
		{"channel=room:a;channel=room:b", 400, "malformed"},
		{"channel=room:a%2", 400, "malformed"},
		{strings.TrimPrefix(many(10_000, func(i int) string { return "room:" + strconv.Itoa(i) }), "&"), 400, "max_channels (4)"},
		{strings.TrimPrefix(many(10_001, func(int) string { return "room:a" }), "&"), 400, "malformed"},
		{"channel=room:a&channel=room:b&channel=room:c&channel=room:d", 400, "max_channels (4)"},
		{"channel=user:bob", 403, "allow subscribe"},         // allowed only by bob's own placeholder
		{"channel=user%3Abob", 403, "allow subscribe"},       // the same, percent-encoded
		{"channel=user:alice%2A", 403, "allow subscribe"},    // a star is a name, not a pattern
		{"channel=user:alice:x", 403, "allow subscribe"},     // the placeholder matches exactly
		{"channel=other", 403, "allow subscribe"},            // no pattern
		{"channel=%72oom:a&channel=feed%00", 400, "control"}, // one bad of several
	}
	db := rs.Client(t)
	before := db.Keys(t.Context(), "*").Val()
	for _, c := range cases {
		target := "/feed?" + c.query // the token in a header: 10,000 channel= are all the parameters
		// A stream, a presence GET (the same rule), a POST.
		for _, accept := range []string{"text/event-stream", "application/json", ""} {
			method, header := http.MethodGet, bearer(alice)
			if accept == "" {
				method = http.MethodPost
			} else {
				header.Set("Accept", accept)
			}
			r := rawRequest(t, node, method, target, header, "")
			status, reason := c.status, c.reason
			if method == http.MethodPost {
				status, reason = postRefusal(c.query, status, reason)
			}
			if r.Status != status || !strings.Contains(r.Body, reason) {
				t.Errorf("%s %s %.80s: %d %q; want %d with %q", method, accept, c.query, r.Status, r.Body, status, reason)
			}
		}
	}
	// Last-Event-ID in the query is read as the header is.
	for _, id := range []string{"garbage@x", "room:a@0:1", url.QueryEscape("feed@e:1,feed@e:2")} {
		header := bearer(alice)
		header.Set("Accept", "text/event-stream")
		r := rawRequest(t, node, http.MethodGet, "/feed?channel=room:b&last_event_id="+id, header, "")
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "Last-Event-ID") {
			t.Errorf("last_event_id=%s: %d %q; want 400", id, r.Status, r.Body)
		}
	}
	if after := db.Keys(t.Context(), "*").Val(); len(after) != len(before) {
		t.Fatalf("refused requests created keys in Redis: %q, before %q", after, before)
	}

	// Duplicates fold: feed, room:a and user:alice, each once in the ids.
	s := dialSSE(t, node.URL("/feed?access_token="+alice+"&channel=room:a&channel=feed&channel=room%3Aa&channel=user:alice"), nil)
	defer s.Close()
	postTo(t, node, alice, "room:a", "room:a/1")
	if e := s.Next(t, wait); e.Data != "room:a/1" || strings.Count(e.ID, "@") != 3 {
		t.Fatalf("event %v; want room:a/1 with the positions of 3 channels", e)
	}
	// The stream is present in the channels of its query as in its own.
	for _, ch := range []string{"feed", "user:alice"} {
		testkit.Eventually(t, wait, func() bool {
			return db.Exists(t.Context(), bus.PresenceKeys(ch)...).Val() == int64(len(bus.PresenceKeys(ch)))
		}, "no presence in %s", ch)
	}
}

// postRefusal is what a POST gets for a stream's query: a POST names one
// channel, and the allow publish refusal.
func postRefusal(query string, status int, reason string) (int, string) {
	switch {
	case reason == "malformed":
		return status, reason
	case strings.Count(query, "channel=") > 1:
		return 400, "at most one channel"
	case status == 403:
		return 403, "allow publish"
	}
	return status, reason
}

// TestQueryChannelPost: a POST publishes to the channel its query names
// when allow publish permits it; idempotency keys are per channel.
func TestQueryChannelPost(t *testing.T) {
	rs := startRedis(t)
	node := feedNode(t, "node", rs, "", nil)
	alice := userToken(t, "alice", time.Hour)
	if r := postMessage(t, node.URL("/feed"), "own", bearer(alice)); r.Status != 200 || r.Answer.Channel != "feed" {
		t.Fatalf("POST without channel=: %d %q; want 200 on feed", r.Status, r.Body)
	}
	postTo(t, node, alice, "user:alice", "mine")
	for _, ch := range []string{"user:bob", "other", "feed:x"} {
		r := postMessage(t, node.URL("/feed?channel="+url.QueryEscape(ch)), "x", bearer(alice))
		if r.Status != http.StatusForbidden || !strings.Contains(r.Body, "allow publish") {
			t.Errorf("POST to %s: %d %q; want 403", ch, r.Status, r.Body)
		}
	}
	key := http.Header{"Authorization": {"Bearer " + alice}, "Idempotency-Key": {"k1"}}
	a1 := postMessage(t, node.URL("/feed?channel=room:a"), "once", key)
	a2 := postMessage(t, node.URL("/feed?channel=room:a"), "once", key)
	b1 := postMessage(t, node.URL("/feed?channel=room:b"), "once", key)
	if a1.Status != 200 || a2.Status != 200 || b1.Status != 200 {
		t.Fatalf("statuses %d %d %d; want 200", a1.Status, a2.Status, b1.Status)
	}
	if !a2.Answer.Duplicate || a2.Answer.Offset != a1.Answer.Offset || b1.Answer.Duplicate || b1.Answer.Channel != "room:b" {
		t.Fatalf("answers %+v %+v %+v; want the second a duplicate of the first, the third new on room:b", a1.Answer, a2.Answer, b1.Answer)
	}
}
