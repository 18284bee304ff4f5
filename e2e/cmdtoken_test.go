package e2e

// Tokens inside a command connection: refresh moves the connection's end to
// the new token's exp, and a subscribe's token grants one more channel;
// both verified by the route's redis_ws_token, for the connection's user.

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// grantToken is a token of user for d granting the subscribe patterns.
func grantToken(t *testing.T, user string, d time.Duration, subscribe ...string) string {
	claims := jwt.MapClaims{"sub": user, "exp": time.Now().Add(d).Unix()}
	if len(subscribe) > 0 {
		claims["redis_ws"] = map[string]any{"subscribe": subscribe}
	}
	return testkit.HS256(t, claims)
}

// otherKeyToken is alice's token, signed with a key the node does not have.
func otherKeyToken(t *testing.T) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stillOpen checks that c answers a command (unsubscribe from a channel it
// does not have) with the id.
func stillOpen(t *testing.T, c *wsClient, id int) {
	t.Helper()
	command(t, c, `"id":`+strconv.Itoa(id)+`,"cmd":"unsubscribe","channel":"room:none"`)
	expectRefusal(t, c, uint64(id), protocol.ErrNotSubscribed)
}

// aliceCommands is alice's command client, with a token for an hour, on a
// node of commandNodes, and its Redis.
func aliceCommands(t *testing.T) (*wsClient, *redis.Client) {
	t.Helper()
	rs := startRedis(t)
	node := commandNodes(t, rs, 1)[0]
	a := dialCommands(t, node.WSURL("/ws"), userBearer(t, "alice"))
	expectFrame(t, a, protocol.TypeSubscribed, 0, "user:alice")
	return a, rs.Client(t)
}

// TestCommandRefresh: a connection refreshed before its token expires
// lives past the first exp (its twin, not refreshed, is closed with 4003
// then); a refresh with another user's, an expired, a garbage, a foreign
// or an oversized token is refused with invalid_token and the connection
// stays.
func TestCommandRefresh(t *testing.T) {
	rs := startRedis(t)
	node := commandNodes(t, rs, 1)[0]
	// exp is in whole seconds: this token expires 2 to 3 s from now.
	short := grantToken(t, "alice", 3*time.Second)
	refreshed := dialCommands(t, node.WSURL("/ws"), bearer(short))
	expectFrame(t, refreshed, protocol.TypeSubscribed, 0, "user:alice")
	twin := dialCommands(t, node.WSURL("/ws"), bearer(short))
	expectFrame(t, twin, protocol.TypeSubscribed, 0, "user:alice")

	for id, tok := range []string{
		grantToken(t, "bob", time.Hour),           // another user
		grantToken(t, "alice", -time.Minute),      // expired
		"not.a.token",                             // garbage
		otherKeyToken(t),                          // another key
		strings.Repeat("a", 9<<10),                // beyond 8 KiB
		strings.Repeat("x", 20) + "." + short[3:], // tampered
	} {
		command(t, refreshed, `"id":`+strconv.Itoa(id+1)+`,"cmd":"refresh","token":"`+tok+`"`)
		expectRefusal(t, refreshed, uint64(id+1), protocol.ErrInvalidToken)
	}
	long := time.Now().Add(time.Hour).Unix()
	command(t, refreshed, `"id":10,"cmd":"refresh","token":"`+testkit.HS256(t, jwt.MapClaims{"sub": "alice", "exp": long})+`"`)
	if f := expectFrame(t, refreshed, protocol.TypeRefreshed, 10, ""); f.Exp != long {
		t.Fatalf("refreshed %s; want exp %d", frameString(f), long)
	}
	if code, _ := twin.WaitClosed(t, wait); code != protocol.CloseTokenExpired {
		t.Fatalf("the connection not refreshed closed with %d; want %d", code, protocol.CloseTokenExpired)
	}
	stillOpen(t, refreshed, 11)
	if refreshed.Closed() {
		t.Fatal("the refreshed connection was closed at its first token's exp")
	}
}

// TestCommandChannelToken: a subscribe's token grants the channels its
// subscribe claim matches, for the connection's user, beyond the route's
// rules; any other token is invalid_token.
func TestCommandChannelToken(t *testing.T) {
	a, rdb := aliceCommands(t)

	grant := grantToken(t, "alice", time.Hour, "secret:1", "vault:x*")
	for id, c := range []struct{ channel, token string }{
		{"secret:2", grant}, // not granted
		{"vault:y", grant},  // not matched
		{"secret:1", grantToken(t, "bob", time.Hour, "secret:1")}, // another user
		{"secret:1", grantToken(t, "alice", -time.Minute, "secret:1")},
		{"secret:1", "garbage"},
		{"secret:1", strings.Repeat("a", 9<<10)},
	} {
		command(t, a, `"id":`+strconv.Itoa(id+1)+`,"cmd":"subscribe","channel":"`+c.channel+`","token":"`+c.token+`"`)
		expectRefusal(t, a, uint64(id+1), protocol.ErrInvalidToken)
	}
	command(t, a, `"id":10,"cmd":"subscribe","channel":"secret:1","token":"`+grant+`"`)
	expectFrame(t, a, protocol.TypeSubscribed, 10, "secret:1")
	command(t, a, `"id":11,"cmd":"subscribe","channel":"vault:xyz","token":"`+grant+`"`)
	expectFrame(t, a, protocol.TypeSubscribed, 11, "vault:xyz")
	command(t, a, `"id":12,"cmd":"subscribe","channel":"secret:2"`)
	expectRefusal(t, a, 12, protocol.ErrForbidden)
	publish(t, rdb, "secret:1", "granted")
	expectMessage(t, a, "secret:1", "granted")
}

// TestTokenVerifierNotPrinted: the verifier redis_ws_token hands on is a
// request variable whose placeholder names it and holds no key, and no
// token reaches the logs.
func TestTokenVerifierNotPrinted(t *testing.T) {
	node := startNode(t, "node", siteCaddyfile(`
	log default {
		level DEBUG
	}`, `
	route /v {
		redis_ws_token {
			secret {env.JWT_SECRET}
		}
		header X-Verifier "{http.vars.redis_ws_token}"
		respond 200
	}`), map[string]string{"JWT_SECRET": testkit.TestSecret})
	tok := userToken(t, "alice", time.Hour)
	r := rawRequest(t, node, http.MethodGet, "/v", bearer(tok), "")
	if got := r.Header.Get("X-Verifier"); r.Status != http.StatusOK || got != "redis_ws_token" {
		t.Fatalf("%d, X-Verifier %q; want 200 and the provider's name only", r.Status, got)
	}
	// The secret comes from the environment at start, so that not even
	// Caddy's own debug lines of its config hold it.
	if strings.Contains(node.Logs(), testkit.TestSecret) {
		t.Fatal("the secret is in the node's logs")
	}
	tokensNotLogged(t, node, minted{tok})
}
