package e2e

// A connection ends when the token that authenticated it expires: a
// WebSocket of every kind is closed with 4003, an event stream ends (and
// its EventSource, reconnecting with the same token, is refused). A token
// that expired before the connection opened is refused.

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

func TestTokenExpiryEndsConnections(t *testing.T) {
	rs := startRedis(t)
	node := feedNode(t, "node", rs, "", nil)
	// exp is in whole seconds: this token expires 2 to 3 s from now.
	short := userToken(t, "alice", 3*time.Second)
	raw := dialWS(t, node.WSURL("/feed"), bearer(short))
	envelope := dialWS(t, node.WSURL("/feed"), http.Header{
		"Authorization": {"Bearer " + short}, "Sec-Websocket-Protocol": {protocol.Subprotocol}})
	stream := dialSSE(t, node.URL(feedQuery(short, "room:a")), nil)
	defer stream.Close()
	long := dialWS(t, node.WSURL("/feed"), bearer(userToken(t, "bob", time.Hour)))

	for name, c := range map[string]*wsClient{"raw": raw, "envelope": envelope} {
		if code, _ := c.WaitClosed(t, wait); code != protocol.CloseTokenExpired {
			t.Fatalf("%s WebSocket closed with %d; want %d", name, code, protocol.CloseTokenExpired)
		}
	}
	stream.WaitEnded(t, wait)
	if long.Closed() {
		t.Fatal("a WebSocket whose token is valid for an hour was closed")
	}
	// EventSource comes back with the same URL, and the same token.
	if _, err := tryDialSSE(t, sseHTTP, node.URL(feedQuery(short, "room:a")), http.Header{"Last-Event-ID": {stream.LastID()}}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("an expired token's stream: %v; want 401", err)
	}
	// The page opens a new one with a fresh token, its last id in the query.
	fresh := userToken(t, "alice", time.Hour)
	postTo(t, node, fresh, "room:a", "room:a/missed")
	again := dialSSE(t, node.URL(feedQuery(fresh, "room:a")+"&last_event_id="+url.QueryEscape(stream.LastID())), nil)
	defer again.Close()
	if e := again.Next(t, wait); e.Data != "room:a/missed" {
		t.Fatalf("the new stream's first event is %v; want the one missed", e)
	}
}

// A token past its exp but within the provider's leeway passes
// authentication, yet no connection would last: refused with 401.
func TestTokenExpiredAtHandshake(t *testing.T) {
	rs := startRedis(t)
	node := feedNode(t, "node", rs, "", nil) // leeway 30s
	late := userToken(t, "alice", -5*time.Second)
	if r := postMessage(t, node.URL("/feed"), "x", bearer(late)); r.Status != http.StatusOK {
		t.Fatalf("POST within the leeway: %d %q; want 200 (a POST does not last)", r.Status, r.Body)
	}
	for _, header := range []http.Header{upgradeHeader("Authorization", "Bearer "+late), {"Accept": {"text/event-stream"}, "Authorization": {"Bearer " + late}}} {
		r := rawRequest(t, node, http.MethodGet, "/feed", header, "")
		if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "token expired") || !strings.Contains(r.Header.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("%v: %d %q %v; want 401, token expired", header, r.Status, r.Body, r.Header)
		}
	}
}
