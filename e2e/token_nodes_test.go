package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// redactTokens is the log filter the README gives: the query token and
// the subprotocol that carries one are kept out of Caddy's logs.
const redactTokens = `format filter {
			request>uri query {
				delete access_token
			}
			request>headers>Sec-Websocket-Protocol regexp redis_ws[.]token[.][^,]+ redis_ws.token.REDACTED
		}`

// tokenNode runs redis_ws_token in front of a redis_ws whose channel is the
// user's own, with every log at DEBUG, filtered as the README says, and
// the access log too if asked.
func tokenNode(t *testing.T, rs *redisServer, accessLog bool) *caddyNode {
	t.Helper()
	site := ""
	if accessLog {
		site = `
	log {
		output stderr
		` + redactTokens + `
	}`
	}
	return startNode(t, "node", siteCaddyfile(`
	log default {
		level DEBUG
		`+redactTokens+`
	}`, site+`
	redis_ws_token /ws {
		secret {$JWT_SECRET}
	}
	redis_ws /ws user:{http.auth.user.id} {
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
	respond /health 200`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port), "JWT_SECRET": testkit.TestSecret})
}

// minted remembers every token a test made, to look for it in the logs.
type minted []string

func (m *minted) token(t *testing.T, user string, exp time.Duration) string {
	tok := testkit.HS256(t, jwt.MapClaims{"sub": user, "exp": time.Now().Add(exp).Unix()})
	*m = append(*m, tok)
	return tok
}

// TestTokenAccessLogWebSockets: with the access log on, WebSockets live on
// after their request's log line. Caddy's log counts the bytes of a
// connection hijacked through it and reads the count when the handler
// returns, while redis_ws's reader and writer go on: a DATA RACE the -race
// node reported (failing the test at cleanup) before redis_ws hijacked
// beneath the log's wrapper, in some runs only, as the race detector sees
// a race only when the goroutines meet it; each upgrade still has its line.
func TestTokenAccessLogWebSockets(t *testing.T) {
	rs := startRedis(t)
	node := tokenNode(t, rs, true)
	var toks minted
	header := http.Header{"Authorization": {"Bearer " + toks.token(t, "u1", time.Hour)}}
	for i := range 3 {
		c := dialWS(t, node.WSURL("/ws"), header)
		c.SendText(t, "m"+strconv.Itoa(i))
		c.Collect(t, 1, wait)
		if i < 2 {
			c.Close()
		}
	}
	testkit.Eventually(t, wait, func() bool {
		return countLines(node.Logs(), `"logger":"http.log.access.log0"`, `"uri":"/ws"`) == 3
	}, "an access log line for each of the 3 upgrades")
}

// TestTokenChannels: a valid token from each source gets the user's own
// channel, and only it; a POST with the token publishes there.
func TestTokenChannels(t *testing.T) {
	rs := startRedis(t)
	node := tokenNode(t, rs, false)
	rdb := rs.Client(t)
	var toks minted
	subprotocols := func(p ...string) *websocket.Dialer {
		return &websocket.Dialer{Proxy: nil, HandshakeTimeout: 10 * time.Second, Subprotocols: p}
	}
	for _, c := range []struct {
		source   string
		dial     func(t *testing.T, tok string) (*wsClient, *http.Response, error)
		protocol string // what the server picked
	}{
		{"header", func(t *testing.T, tok string) (*wsClient, *http.Response, error) {
			return tryDialWS(t, node.WSURL("/ws"), http.Header{"Authorization": {"Bearer " + tok}})
		}, ""},
		{"subprotocol", func(t *testing.T, tok string) (*wsClient, *http.Response, error) {
			return tryDialWSWith(t, subprotocols("redis_ws.token."+tok), node.WSURL("/ws"), nil)
		}, ""},
		{"subprotocol-with-envelope", func(t *testing.T, tok string) (*wsClient, *http.Response, error) {
			return tryDialWSWith(t, subprotocols("redis_ws.token."+tok, protocol.Subprotocol), node.WSURL("/ws"), nil)
		}, protocol.Subprotocol},
		{"cookie", func(t *testing.T, tok string) (*wsClient, *http.Response, error) {
			return tryDialWS(t, node.WSURL("/ws"), http.Header{"Cookie": {"redis_ws_token=" + tok}})
		}, ""},
		{"query", func(t *testing.T, tok string) (*wsClient, *http.Response, error) {
			return tryDialWS(t, node.WSURL("/ws?access_token="+tok), nil)
		}, ""},
	} {
		t.Run(c.source, func(t *testing.T) {
			user := "via-" + c.source
			ws, resp, err := c.dial(t, toks.token(t, user, time.Hour))
			if err != nil {
				t.Fatalf("dial: %v (%v)", err, resp)
			}
			// The token's subprotocol is never echoed: only redis_ws's own.
			if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != c.protocol || ws.Conn.Subprotocol() != c.protocol {
				t.Errorf("the server picked subprotocol %q; want %q", got, c.protocol)
			}
			ctx := context.Background()
			if err := rdb.Publish(ctx, "user:someone-else", "not for "+user).Err(); err != nil {
				t.Fatal(err)
			}
			if err := rdb.Publish(ctx, "user:"+user, "for "+user).Err(); err != nil {
				t.Fatal(err)
			}
			// The envelope first says which channels are subscribed.
			for {
				m := ws.Next(t, 5*time.Second)
				if bytes.Contains(m.Data, []byte("not for")) {
					t.Fatalf("got %v, another user's", m)
				}
				if bytes.Contains(m.Data, []byte("for "+user)) {
					break
				}
			}
		})
	}
	t.Run("event stream", func(t *testing.T) {
		sse := dialSSE(t, node.URL("/ws?access_token="+toks.token(t, "via-sse", time.Hour)), nil)
		if err := rdb.Publish(context.Background(), "user:via-sse", "for via-sse").Err(); err != nil {
			t.Fatal(err)
		}
		if e := sse.Next(t, 5*time.Second); e.Data != "for via-sse" {
			t.Errorf("event %v; want for via-sse", e)
		}
	})
	t.Run("post", func(t *testing.T) {
		tok := toks.token(t, "poster", time.Hour)
		ws := dialWS(t, node.WSURL("/ws"), http.Header{"Authorization": {"Bearer " + tok}})
		req, err := http.NewRequest(http.MethodPost, node.URL("/ws"), strings.NewReader("posted"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := noKeepAliveClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST: %s", resp.Status)
		}
		if m := ws.Next(t, 5*time.Second); string(m.Data) != "posted" {
			t.Errorf("got %v; want what the POST published to the user's channel", m)
		}
	})
	testkit.Eventually(t, 10*time.Second, func() bool { return countLines(node.Logs(), "connection closed") >= 6 },
		"the node logs the end of each WebSocket")
	tokensNotLogged(t, node, toks)
}

// TestTokenRefused: each bad token is a 401 that holds nothing of it.
func TestTokenRefused(t *testing.T) {
	rs := startRedis(t)
	node := tokenNode(t, rs, true)
	var toks minted
	forged, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "mallory", "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString([]byte(strings.Repeat("x", 32)))
	if err != nil {
		t.Fatal(err)
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "mallory", "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	huge := toks.token(t, strings.Repeat("u", 9<<10), time.Hour)
	toks = append(toks, forged, none)
	for _, c := range []struct {
		name   string
		url    string
		header http.Header
	}{
		{"none", "/ws", nil},
		{"expired", "/ws?access_token=" + toks.token(t, "late", -time.Minute), nil},
		{"forged", "/ws", http.Header{"Authorization": {"Bearer " + forged}}},
		{"alg none", "/ws", http.Header{"Cookie": {"redis_ws_token=" + none}}},
		{"garbage", "/ws", http.Header{"Sec-WebSocket-Protocol": {"redis_ws.token.not-a-token"}}},
		{"too large", "/ws", http.Header{"Authorization": {"Bearer " + huge}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, resp, err := tryDialWS(t, node.WSURL(c.url), c.header)
			if !errors.Is(err, websocket.ErrBadHandshake) || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("dial: %v (%v); want 401", err, resp)
			}
			body, _ := io.ReadAll(resp.Body)
			for _, tok := range toks {
				if len(body) > 0 && bytes.Contains(body, []byte(tok)) {
					t.Errorf("the 401's body holds a token: %q", body)
				}
			}
			_, err = tryDialSSE(t, sseHTTP, node.URL(c.url), c.header)
			var refused *sseRefused
			if !errors.As(err, &refused) || refused.Status != http.StatusUnauthorized {
				t.Errorf("event stream: %v; want 401", err)
			}
		})
	}
	// A valid query token, whose request ends in the access log too.
	sse := dialSSE(t, node.URL("/ws?access_token="+toks.token(t, "reader", time.Hour)), nil)
	sse.Close()
	testkit.Eventually(t, 10*time.Second, func() bool {
		return countLines(node.Logs(), `"logger":"http.log.access.log0"`) >= 13
	}, "the access log has a line for each of the 13 requests")
	logs := node.Logs()
	if countLines(logs, `"logger":"http.log.access.log0"`, "redis_ws.token.REDACTED") == 0 {
		t.Error("no access log line shows the redacted subprotocol: the filter did not run")
	}
	if countLines(logs, `"logger":"http.log.access.log0"`, `"status":200`, `"uri":"/ws"`) != 1 {
		t.Error("the event stream's access log line does not show /ws without its query")
	}
	tokensNotLogged(t, node, toks)
	if n := countLines(node.Logs(), "token refused", `"reason":"expired"`); n < 2 {
		t.Errorf("%d lines say why the expired token was refused; want one per try (2)", n)
	}
}

// tokensNotLogged looks for every part of every token in everything the
// node wrote.
func tokensNotLogged(t *testing.T, node *caddyNode, toks minted) {
	t.Helper()
	logs := node.Logs()
	for i, tok := range toks {
		for _, part := range strings.Split(tok, ".") {
			if len(part) >= 16 && strings.Contains(logs, part) {
				t.Errorf("token %d is in the node's logs:\n%s", i, tail(logs, 4000))
				return
			}
		}
	}
}
