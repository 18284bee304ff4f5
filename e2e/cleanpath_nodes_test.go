package e2e

// Paths that are not clean, sent to Caddy nodes: refused before anything
// else for every kind of request, behind basic auth too, and at the edges
// (encoded dot segments, rewrites). cleanpath_test.go has the rule in process.

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
)

// requestKinds are the requests a route with history and presence serves,
// each to be sent to a path (and query).
var requestKinds = []struct {
	name, method, query string
	header              http.Header
	body                string
}{
	{"WebSocket", http.MethodGet, "", upgradeHeader(), ""},
	{"event stream with rewind", http.MethodGet, "?rewind=5", http.Header{"Accept": {"text/event-stream"}}, ""},
	{"POST", http.MethodPost, "", nil, "posted through a dirty path"},
	{"presence query", http.MethodGet, "", http.Header{"Accept": {"application/json"}}, ""},
	{"OPTIONS", http.MethodOptions, "", nil, ""},
}

func basicAuth(user string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":secret"))
}

// The README's pattern, basic_auth /rooms/staff* in front of
// room:{http.request.uri.path.1}: every way of writing a path that names
// the staff room while the matchers see another one is refused with 400 or
// challenged with 401, for every kind of request, and none reaches Redis.
func TestCleanPathBehindBasicAuth(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := startNode(t, "node", siteCaddyfile("", `
	basic_auth /rooms/staff* {
		alice `+aliceHash+`
	}
	redis_ws /rooms/* {
		subscribe room:{http.request.uri.path.1}
		publish room:{http.request.uri.path.1}
		history 100 1h
		presence
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
	respond "not a room" 404`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
	alice := http.Header{"Authorization": {basicAuth("alice")}}
	for i := range 5 {
		if r := postMessage(t, n.URL("/rooms/staff"), fmt.Sprintf("staff only %d", i), alice); r.Status != http.StatusOK || r.Answer.Channel != "room:staff" {
			t.Fatalf("POST as alice: %d %q", r.Status, r.Body)
		}
	}
	keysBefore := rdb.Keys(context.Background(), "*").Val()
	base := n.BaseGoroutines(t)

	abs := fmt.Sprintf("http://127.0.0.1:%d", n.Port)
	for _, target := range []string{
		"/rooms/staff/../x",
		"/rooms/staff/../x/",
		"/rooms/staff/../x/.",
		"/rooms/staff/../../rooms/x",
		"/rooms/staff/./../x",
		"/rooms/staff/%2e/../x",
		"/rooms/staff//../x",
		"/rooms/staff/..//x",
		"/rooms//staff/../x",
		"/rooms/./staff/../x",
		"/rooms/staff/..%2Fx",
		"/rooms/staff/..%2fx",
		"/rooms/staff%2F..%2Fx",
		"/rooms/staff%2f..%2fx",
		"/rooms/staff%2F../x",
		"/rooms/staff%2F%2E%2E%2Fx",
		"/rooms/staff%2f%2e%2e%2fx",
		"/rooms/staff/%2e%2e/x",
		"/rooms/staff/%2E%2E/x",
		"/rooms/staff/%2e%2E/x",
		"/rooms/staff/.%2e/x",
		"/rooms/staff/%2e./x",
		"/rooms/staff/%2e%2e%2fx",
		"/rooms/STAFF/../x",
		"/rooms/Staff%2F..%2Fx",
		"/rooms/staff;/../x",
		"/rooms//staff",
		"/rooms/staff/..;/x",
		`/rooms/staff\..\x`,
		"/rooms/staff%5C..%5Cx",
		"/rooms/staff/%252e%252e/x",
		abs + "/rooms/staff/../x",
		abs + "/rooms/staff%2F..%2Fx",
	} {
		for _, kind := range requestKinds {
			r := rawRequest(t, n, kind.method, target+kind.query, kind.header, kind.body)
			switch {
			case r.Status == http.StatusUnauthorized:
			case r.Status == http.StatusBadRequest && strings.Contains(r.Body, "is not clean") && strings.Contains(r.Body, "the clean path is"):
			default:
				t.Errorf("%s %s: %d %q; want 400 (not clean) or 401", kind.name, target, r.Status, r.Body)
			}
		}
	}
	if keys := rdb.Keys(context.Background(), "*").Val(); !slices.Equal(sorted(keys), sorted(keysBefore)) {
		t.Errorf("keys in Redis after the refusals: %q, want only %q", keys, keysBefore)
	}
	if chans := rdb.PubSubChannels(context.Background(), "*").Val(); len(chans) != 0 {
		t.Errorf("channels subscribed after the refusals: %q", chans)
	}
	if got := rdb.XLen(context.Background(), bus.HistoryKeys("room:staff")[1]).Val(); got != 5 {
		t.Errorf("the staff room holds %d messages, want its 5", got)
	}
	n.GoroutinesBackTo(t, base)

	// The clean path still works, for alice.
	s := dialSSE(t, n.URL("/rooms/staff?rewind=5"), alice)
	if got := s.Collect(t, 5, wait); got[4].Data != "staff only 4" {
		t.Fatalf("alice's stream: %v", got)
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// The edges of the rule, decided one by one: a trailing slash, %2F inside a
// segment, upper case and backslashes are served (the matchers and the
// placeholders agree on them); an empty path is refused; OPTIONS * never
// reaches the handler.
func TestCleanPathEdges(t *testing.T) {
	rs := startRedis(t)
	n := startNode(t, "node", siteCaddyfile("", `
	basic_auth /rooms/staff* {
		alice `+aliceHash+`
	}
	redis_ws /rooms/* {
		subscribe room:{http.request.uri.path.1}
		publish room:{http.request.uri.path.1}
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
	redis_ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
	}`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
	alice := http.Header{"Authorization": {basicAuth("alice")}}
	for _, tc := range []struct {
		name, target string
		header       http.Header
		status       int
		answer       string // the channel of a 200, or what a refusal says
	}{
		{"a trailing slash is clean", "/rooms/a/", nil, 200, "room:a"},
		{"%2F inside a segment is a slash to the matchers and the placeholders", "/rooms/a%2Fb", nil, 200, "room:a"},
		{"%2F after staff is seen by basic_auth", "/rooms/staff%2Fb", nil, 401, ""},
		{"upper case matches basic_auth", "/ROOMS/STAFF", nil, 401, ""},
		{"upper case is kept in the channel name", "/ROOMS/STAFF", alice, 200, "room:STAFF"},
		{"a backslash is a character", `/rooms/x\..\staff`, nil, 200, `room:x\..\staff`},
		{"a backslash after staff is seen by basic_auth", `/rooms/staff\..\x`, nil, 401, ""},
		{"an empty path", fmt.Sprintf("http://127.0.0.1:%d", n.Port), nil, 400, `the path is empty; the clean path is "/"`},
	} {
		r := rawRequest(t, n, http.MethodPost, tc.target, tc.header, "x")
		if r.Status != tc.status || (tc.status == 200 && !strings.Contains(r.Body, fmt.Sprintf(`"channel":%q`, tc.answer))) ||
			(tc.status == 400 && !strings.Contains(r.Body, tc.answer)) {
			t.Errorf("%s: POST %s: %d %q, want %d %s", tc.name, tc.target, r.Status, r.Body, tc.status, tc.answer)
		}
	}
	if r := rawRequest(t, n, http.MethodOptions, "*", nil, ""); r.Status != http.StatusOK || r.Body != "" {
		t.Errorf("OPTIONS *: %d %q, want Go's own empty 200", r.Status, r.Body)
	}
}
