package e2e

// Presence through Caddy processes and a real Redis: who is in a channel,
// asked of any node; join and leave events for envelope clients, with the
// leave delay; a node killed; Redis down and restarted.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// presenceCaddyfile: /rooms/<room> with presence, the user named by the
// query's user (leave delay 1s, timeout 3s); /inbox behind basic_auth with
// the default user, {http.auth.user.id}; /plain without presence.
func presenceCaddyfile() string {
	return siteCaddyfile("", `
	redis_ws /rooms/* {
		subscribe room:{http.request.uri.path.1}
		publish room:{http.request.uri.path.1}
		redis redis://127.0.0.1:{$REDIS_PORT}
		presence {
			user {http.request.uri.query.user}
			timeout 3s
			leave_delay 1s
		}
	}
	route /inbox {
		basic_auth {
			alice `+aliceHash+`
		}
		redis_ws inbox {
			redis redis://127.0.0.1:{$REDIS_PORT}
			presence
		}
	}
	redis_ws /plain plain {
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
	respond /health 200`)
}

// presenceAnswer is the JSON of a presence query.
type presenceAnswer struct {
	Channels map[string]struct {
		Connections int      `json:"connections"`
		Users       []string `json:"users"`
		UserCount   int      `json:"user_count"`
	} `json:"channels"`
}

// queryPresence asks url who is there; the answer is decoded for a 200.
func queryPresence(t testing.TB, url string, header http.Header) (int, presenceAnswer, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	resp, err := noKeepAliveClient.Do(req)
	if err != nil {
		t.Fatalf("presence %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var a presenceAnswer
	if resp.StatusCode == http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("presence %s: Content-Type %q", url, ct)
		}
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("presence %s: %q is not the JSON answer: %v", url, body, err)
		}
	}
	return resp.StatusCode, a, string(body)
}

// waitPresence waits until every node answers conns connections and
// exactly users for ch, asked through path.
func waitPresence(t testing.TB, nodes []*caddyNode, path, ch string, conns int, users ...string) {
	t.Helper()
	if users == nil {
		users = []string{}
	}
	for _, n := range nodes {
		var last string
		testkit.Eventually(t, wait, func() bool {
			status, a, body := queryPresence(t, n.URL(path), nil)
			last = fmt.Sprintf("%d %s", status, body)
			c, ok := a.Channels[ch]
			return status == http.StatusOK && ok && c.Connections == conns && slices.Equal(c.Users, users) && c.UserCount == len(users)
		}, "%s %s: %v, want %d connections and users %q in %s", n.Name, path, atFailure(func() any { return last }), conns, users, ch)
	}
}

// nextPresence reads frames until a presence event (join, leave or
// presence_reset), within timeout.
func nextPresence(t testing.TB, c *wsClient, timeout time.Duration) envelope {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		e := decodeEnvelope(t, c.Next(t, time.Until(deadline)))
		switch e.Type {
		case protocol.TypeJoin, protocol.TypeLeave, protocol.TypePresenceReset:
			return e
		}
	}
}

// expectPresenceSet reads len(want) events, each written "<type> <channel>
// <user>", and checks that they are want in any order: events of several
// channels or users are not ordered between them.
func expectPresenceSet(t testing.TB, c *wsClient, want ...string) {
	t.Helper()
	got := make([]string, len(want))
	for i := range got {
		e := nextPresence(t, c, wait)
		got[i] = e.Type + " " + e.Channel + " " + e.User
	}
	slices.Sort(got)
	if !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Fatalf("%s: events %q, want %q in any order", c.URL, got, want)
	}
}

// expectPresence reads the next event and checks it.
func expectPresence(t testing.TB, c *wsClient, typ, ch, user string) {
	t.Helper()
	if e := nextPresence(t, c, wait); e.Type != typ || e.Channel != ch || e.User != user {
		t.Fatalf("%s: event %s, want %s of %s in %s", c.URL, e, typ, user, ch)
	}
}

func TestPresence(t *testing.T) {
	rs := startRedis(t)
	ns := startNodes(t, 3, presenceCaddyfile(), rs)
	const delay = time.Second // leave_delay
	// The watcher: an anonymous envelope client of room a on node 3.
	watcher := dialEnvelope(t, ns[2].WSURL("/rooms/a"))
	expectSubscribed(t, watcher, "room:a")
	waitPresence(t, ns, "/rooms/a", "room:a", 1)

	t.Run("counts and users from any node; two tabs of one user make one join", func(t *testing.T) {
		tab1 := dialEnvelope(t, ns[0].WSURL("/rooms/a?user=alice"))
		expectPresence(t, watcher, "join", "room:a", "alice")
		tab2 := dialWS(t, ns[1].WSURL("/rooms/a?user=alice"), nil) // a raw client counts as well
		waitPresence(t, ns, "/rooms/a", "room:a", 3, "alice")
		watcher.ExpectNothing(t, 300*time.Millisecond)

		// Its own join reaches the first tab too, after its subscribed frame.
		expectSubscribed(t, tab1, "room:a")
		expectPresence(t, tab1, "join", "room:a", "alice")

		tab1.Close()
		waitPresence(t, ns, "/rooms/a", "room:a", 2, "alice") // the other tab still has her
		tab2.Close()
		closed := time.Now()
		expectPresence(t, watcher, "leave", "room:a", "alice")
		if d := time.Since(closed); d < delay {
			t.Errorf("leave %s after the last tab closed, before the leave delay (%s)", d, delay)
		}
		waitPresence(t, ns, "/rooms/a", "room:a", 1)
	})

	t.Run("a page reload within the leave delay makes no leave and no join", func(t *testing.T) {
		bob := dialWS(t, ns[0].WSURL("/rooms/a?user=bob"), nil)
		expectPresence(t, watcher, "join", "room:a", "bob")
		waitPresence(t, ns[:1], "/rooms/a", "room:a", 2, "bob")
		bob.Close()
		bob = dialWS(t, ns[1].WSURL("/rooms/a?user=bob"), nil) // back, through another node
		watcher.ExpectNothing(t, delay+time.Second)
		waitPresence(t, ns, "/rooms/a", "room:a", 2, "bob")
		bob.Close()
		expectPresence(t, watcher, "leave", "room:a", "bob")
	})

	t.Run("anonymous connections are counted, not listed; an event stream counts", func(t *testing.T) {
		anon := dialWS(t, ns[0].WSURL("/rooms/a"), nil)
		stream := dialSSE(t, ns[1].URL("/rooms/a?user=erin"), nil)
		expectPresence(t, watcher, "join", "room:a", "erin")
		waitPresence(t, ns, "/rooms/a", "room:a", 3, "erin")
		anon.Close()
		stream.Close()
		expectPresence(t, watcher, "leave", "room:a", "erin")
		waitPresence(t, ns, "/rooms/a", "room:a", 1)
	})

	t.Run("a user of room a never sees room b", func(t *testing.T) {
		carol := dialWS(t, ns[0].WSURL("/rooms/b?user=carol"), nil)
		waitPresence(t, ns, "/rooms/b", "room:b", 1, "carol")
		waitPresence(t, ns, "/rooms/a", "room:a", 1)
		watcher.ExpectNothing(t, 300*time.Millisecond)
		carol.Close()
		waitPresence(t, ns, "/rooms/b", "room:b", 0)
	})

	t.Run("the default user is the authenticated one", func(t *testing.T) {
		auth := http.Header{"Authorization": {"Basic YWxpY2U6c2VjcmV0"}} // alice:secret
		c := dialWS(t, ns[0].WSURL("/inbox"), auth)
		var last string
		testkit.Eventually(t, wait, func() bool {
			status, a, body := queryPresence(t, ns[1].URL("/inbox"), auth)
			last = body
			return status == http.StatusOK && slices.Equal(a.Channels["inbox"].Users, []string{"alice"})
		}, "/inbox: %v, want alice", atFailure(func() any { return last }))
		if status, _, _ := queryPresence(t, ns[1].URL("/inbox"), nil); status != http.StatusUnauthorized {
			t.Errorf("/inbox without credentials: %d, want 401", status)
		}
		c.Close()
	})

	t.Run("a route without presence says so", func(t *testing.T) {
		status, _, body := queryPresence(t, ns[0].URL("/plain"), nil)
		if status != http.StatusBadRequest || !strings.Contains(body, "connect with a WebSocket client") {
			t.Fatalf("/plain: %d %q, want 400", status, body)
		}
	})

	t.Run("a killed node's users leave within the timeout", func(t *testing.T) {
		dialWS(t, ns[1].WSURL("/rooms/a?user=dave"), nil)
		frank := dialWS(t, ns[0].WSURL("/rooms/a?user=frank"), nil)
		for range 2 {
			e := nextPresence(t, watcher, wait)
			if e.Type != "join" || (e.User != "dave" && e.User != "frank") {
				t.Fatalf("event %s, want joins of dave and frank", e)
			}
		}
		waitPresence(t, ns, "/rooms/a", "room:a", 3, "dave", "frank")
		ns[1].Kill(t)
		killed := time.Now()
		expectPresence(t, watcher, "leave", "room:a", "dave")
		t.Logf("dave left %s after his node was killed (timeout 3s)", time.Since(killed).Round(time.Millisecond))
		waitPresence(t, []*caddyNode{ns[0], ns[2]}, "/rooms/a", "room:a", 2, "frank")
		frank.Close()
		expectPresence(t, watcher, "leave", "room:a", "frank")
	})

	t.Run("metrics", func(t *testing.T) {
		var m map[string]float64
		testkit.Eventually(t, wait, func() bool {
			m = scrapeMetrics(t, ns[2]) // the watcher's node: one channel, nobody named; alice, bob, erin, dave and frank joined and left
			return m["caddy_redis_ws_presence_channels"] == 1 && m["caddy_redis_ws_presence_users"] == 0 &&
				m[`caddy_redis_ws_presence_events_total{type="join"}`] == 5 && m[`caddy_redis_ws_presence_events_total{type="leave"}`] == 5
		}, "presence metrics of node 3: %v", atFailure(func() any {
			return fmt.Sprint(m["caddy_redis_ws_presence_channels"], m["caddy_redis_ws_presence_users"],
				m[`caddy_redis_ws_presence_events_total{type="join"}`], m[`caddy_redis_ws_presence_events_total{type="leave"}`])
		}))
	})
}

// Redis down: a query answers 503, and the nodes keep their connections;
// Redis restarted empty: the nodes put presence back, and envelope clients
// are told that events may have been missed.
func TestPresenceRedisRestart(t *testing.T) {
	rs := startRedis(t)
	ns := startNodes(t, 2, presenceCaddyfile(), rs)
	watcher := dialEnvelope(t, ns[1].WSURL("/rooms/a?user=walt"))
	alice := dialWS(t, ns[0].WSURL("/rooms/a?user=alice"), nil)
	waitPresence(t, ns, "/rooms/a", "room:a", 2, "alice", "walt")

	rs.Kill(t)
	status, _, body := queryPresence(t, ns[0].URL("/rooms/a"), nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "Redis") {
		t.Fatalf("query while Redis is down: %d %q, want 503", status, body)
	}
	rs.Restart(t) // empty
	waitPresence(t, ns, "/rooms/a", "room:a", 2, "alice", "walt")
	// The watcher is told that events may have been missed (the nodes put
	// their users back, each joining again in an empty Redis, maybe before
	// its node subscribed again); what happens after reaches it.
	readUntil := func(want string) {
		t.Helper()
		for {
			e := nextPresence(t, watcher, wait)
			if e.Type+" "+e.User == want {
				return
			}
			if e.Type != "join" || (e.User != "alice" && e.User != "walt") {
				t.Fatalf("after the restart: %s, want joins of alice and walt, then %q", e, want)
			}
		}
	}
	readUntil("presence_reset ")
	alice.Close()
	readUntil("leave alice")
	waitPresence(t, ns, "/rooms/a", "room:a", 1, "walt")
}
