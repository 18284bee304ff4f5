package e2e

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
)

// keysNode is one node whose routes record POSTs: anonymous and behind
// basic_auth with the same channel templates, and a route of its own for
// room:orders.
func keysNode(t *testing.T, rs *redisServer) *caddyNode {
	t.Helper()
	return startNodes(t, 1, siteCaddyfile("", `
	redis_ws /public/* {
		subscribe room:{http.request.uri.path.1}
		history 100 1h
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
	route /staff/* {
		basic_auth {
			alice `+aliceHash+`
			bob `+aliceHash+`
		}
		redis_ws {
			subscribe room:{http.request.uri.path.1}
			history 100 1h
			redis redis://127.0.0.1:{$REDIS_PORT}
		}
	}
	redis_ws /orders room:orders {
		history 100 1h
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
	respond /health 200`), rs)[0]
}

// An Idempotency-Key belongs to the user who sent it, on its route: an
// anonymous POST cannot make alice's later one a "duplicate" (the audit:
// her message was never recorded), a retry is still one, and a key reused
// for another body is refused with 422.
func TestIdempotencyKeysScoped(t *testing.T) {
	rs := startRedis(t)
	n := keysNode(t, rs)
	post := func(path, user, body string) postReply {
		t.Helper()
		header := http.Header{"Idempotency-Key": {"order-1"}}
		if user != "" {
			header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":secret")))
		}
		return postMessage(t, n.URL(path), body, header)
	}
	want := func(r postReply, offset int64, duplicate bool) {
		t.Helper()
		if r.Status != http.StatusOK || r.Answer.Offset != offset || r.Answer.Duplicate != duplicate {
			t.Fatalf("%d %q: want 200, offset %d, duplicate %v", r.Status, r.Body, offset, duplicate)
		}
	}
	want(post("/public/orders", "", "from an attacker"), 1, false)
	want(post("/staff/orders", "alice", "alice's order"), 2, false)
	want(post("/staff/orders", "alice", "alice's order"), 2, true) // her retry
	want(post("/staff/orders", "bob", "alice's order"), 3, false)  // the same key is bob's own
	want(post("/public/orders", "", "from an attacker"), 1, true)
	want(post("/orders", "", "from an attacker"), 4, false) // another route

	reused := post("/staff/orders", "alice", "another order")
	if reused.Status != http.StatusUnprocessableEntity || !strings.Contains(reused.Body, "Idempotency-Key") {
		t.Fatalf("a key reused for another body: %d %q, want 422 saying why", reused.Status, reused.Body)
	}
	entries, err := rs.Client(t).XRange(context.Background(), bus.HistoryKeys("room:orders")[1], "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Values["d"].(string))
	}
	if strings.Join(got, "|") != "from an attacker|alice's order|alice's order|from an attacker" {
		t.Fatalf("recorded %q", got)
	}
}

// Channel names with braces and colons cannot make one channel's keys
// another's: a POST to room:{u} with Idempotency-Key m wrote the meta key
// of room:{u}:i, whose POSTs then failed with 502 (WRONGTYPE).
func TestBracedChannelKeys(t *testing.T) {
	rs := startRedis(t)
	n := keysNode(t, rs)
	first := postMessage(t, n.URL("/public/%7Bu%7D"), "one", http.Header{"Idempotency-Key": {"m"}})
	if first.Status != http.StatusOK || first.Answer.Channel != "room:{u}" {
		t.Fatalf("POST to room:{u}: %d %q", first.Status, first.Body)
	}
	for i := range 2 {
		r := postMessage(t, n.URL("/public/%7Bu%7D:i"), "two", nil)
		if r.Status != http.StatusOK || r.Answer.Channel != "room:{u}:i" || r.Answer.Offset != int64(i+1) {
			t.Fatalf("POST %d to room:{u}:i: %d %q", i+1, r.Status, r.Body)
		}
	}
	rdb := rs.Client(t)
	for _, ch := range []string{"room:{u}", "room:{u}:i"} {
		keys := bus.HistoryKeys(ch)
		if typ := rdb.Type(context.Background(), keys[0]).Val(); typ != "hash" {
			t.Errorf("%s: meta key %q is a %s", ch, keys[0], typ)
		}
		if n := rdb.XLen(context.Background(), keys[1]).Val(); n == 0 {
			t.Errorf("%s: stream %q is empty", ch, keys[1])
		}
	}
}
