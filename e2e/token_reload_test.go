package e2e

// Tokens inside a command connection kept across a reload: verified with
// the verifier the process shares across reloads, so that a JWKS rotated
// after the reload is still fetched for it; once a reload changed
// redis_ws_token's settings, the kept connection is told to connect again.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// jwksIssuer signs ES256 tokens and serves the public key of its current
// kid as a JWKS on loopback.
type jwksIssuer struct {
	*httptest.Server
	mu      sync.Mutex
	signers map[string]*ecdsa.PrivateKey // every kid made
	served  string                       // the kid in the set
}

func newJWKSIssuer(t *testing.T) *jwksIssuer {
	t.Helper()
	j := &jwksIssuer{signers: map[string]*ecdsa.PrivateKey{}}
	j.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		j.mu.Lock()
		defer j.mu.Unlock()
		jwk, err := jwkset.NewJWKFromKey(&j.signers[j.served].PublicKey, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: j.served}})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		set := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(j.Close)
	return j
}

// rotate serves a new key under kid instead of the one before, which
// still signs.
func (j *jwksIssuer) rotate(t *testing.T, kid string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	j.mu.Lock()
	j.signers[kid], j.served = k, kid
	j.mu.Unlock()
}

// token signs claims with kid's key.
func (j *jwksIssuer) token(t *testing.T, kid string, claims jwt.MapClaims) string {
	t.Helper()
	j.mu.Lock()
	k := j.signers[kid]
	j.mu.Unlock()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tokenReloadConfig: /j verifies tokens against a JWKS, /h with an HMAC
// secret; hmacExtra goes in /h's redis_ws_token.
func tokenReloadConfig(hmacExtra, siteExtra string) string {
	return siteCaddyfile("", `
	route /j {
		redis_ws_token {
			jwks_url {$JWKS_URL}
			jwks_refresh 1s
		}
		redis_ws user:{http.auth.user.id} {
			redis redis://127.0.0.1:{$REDIS_PORT}
		}
	}
	route /h {
		redis_ws_token {
			secret {$JWT_SECRET}
			`+hmacExtra+`
		}
		redis_ws user:{http.auth.user.id} {
			redis redis://127.0.0.1:{$REDIS_PORT}
		}
	}
	respond /health 200
	`+siteExtra)
}

// TestTokensAcrossReload: connections kept across a reload verify refresh
// and subscribe tokens as new ones do: with an HMAC secret, and with a
// JWKS whose key was rotated to a new kid after the reload: the set is
// still fetched every jwks_refresh for them, so the old kid is refused
// once the set dropped it and the new one is taken. A later reload that
// changes /h's redis_ws_token (not its redis_ws, so the connection stays)
// refuses the kept connection's refresh with not_enabled and its
// subscribe tokens with invalid_token, while a new connection gets the
// new settings.
func TestTokensAcrossReload(t *testing.T) {
	rs := startRedis(t)
	idp := newJWKSIssuer(t)
	idp.rotate(t, "k1")
	hour := func() int64 { return time.Now().Add(time.Hour).Unix() }
	grant := jwt.MapClaims{"sub": "alice", "exp": hour(), "redis_ws": map[string]any{"subscribe": []string{"secret:*"}}}
	env := map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port), "JWT_SECRET": testkit.TestSecret, "JWKS_URL": idp.URL}
	node := startNode(t, "node", tokenReloadConfig("", ""), env)

	j := dialCommands(t, node.WSURL("/j"), bearer(idp.token(t, "k1", jwt.MapClaims{"sub": "alice", "exp": hour()})))
	expectFrame(t, j, protocol.TypeSubscribed, 0, "user:alice")
	h := dialCommands(t, node.WSURL("/h"), bearer(testkit.HS256(t, jwt.MapClaims{"sub": "alice", "exp": hour()})))
	expectFrame(t, h, protocol.TypeSubscribed, 0, "user:alice")

	node.Reload(t, tokenReloadConfig("", "respond /other 204"))
	// k1 is revoked: within jwks_refresh, the kept connection's verifier
	// no longer takes it (its set is still fetched every second).
	idp.rotate(t, "k2")
	id := 100
	testkit.Eventually(t, wait, func() bool {
		id++
		command(t, j, `"id":`+strconv.Itoa(id)+`,"cmd":"refresh","token":"`+idp.token(t, "k1", jwt.MapClaims{"sub": "alice", "exp": hour()})+`"`)
		f := nextFrame(t, j)
		return f.Type == protocol.TypeError && f.Code == protocol.ErrInvalidToken
	}, "a token of the revoked kid k1 still taken on a connection kept across the reload")
	command(t, j, `"id":1,"cmd":"refresh","token":"`+idp.token(t, "k2", jwt.MapClaims{"sub": "alice", "exp": hour()})+`"`)
	expectFrame(t, j, protocol.TypeRefreshed, 1, "")
	command(t, j, `"id":2,"cmd":"subscribe","channel":"secret:j","token":"`+idp.token(t, "k2", grant)+`"`)
	expectFrame(t, j, protocol.TypeSubscribed, 2, "secret:j")
	command(t, j, `"id":3,"cmd":"refresh","channel":"secret:j","token":"`+idp.token(t, "k2", grant)+`"`)
	expectFrame(t, j, protocol.TypeRefreshed, 3, "secret:j")
	command(t, h, `"id":1,"cmd":"refresh","token":"`+testkit.HS256(t, jwt.MapClaims{"sub": "alice", "exp": hour()})+`"`)
	expectFrame(t, h, protocol.TypeRefreshed, 1, "")
	command(t, h, `"id":2,"cmd":"subscribe","channel":"secret:h","token":"`+testkit.HS256(t, grant)+`"`)
	expectFrame(t, h, protocol.TypeSubscribed, 2, "secret:h")

	// /h's token settings change; its redis_ws does not.
	node.Reload(t, tokenReloadConfig("leeway 1s", "respond /other 204"))
	command(t, h, `"id":3,"cmd":"refresh","token":"`+testkit.HS256(t, jwt.MapClaims{"sub": "alice", "exp": hour()})+`"`)
	if f := nextFrame(t, h); f.Type != protocol.TypeError || f.ID != 3 || f.Code != protocol.ErrNotEnabled || !strings.Contains(f.Reason, "connect again") {
		t.Fatalf("refresh after the settings changed: %s; want not_enabled, connect again", frameString(f))
	}
	command(t, h, `"id":4,"cmd":"subscribe","channel":"secret:x","token":"`+testkit.HS256(t, grant)+`"`)
	expectRefusal(t, h, 4, protocol.ErrInvalidToken)
	stillOpen(t, h, 5)
	fresh := dialCommands(t, node.WSURL("/h"), bearer(testkit.HS256(t, jwt.MapClaims{"sub": "alice", "exp": hour()})))
	expectFrame(t, fresh, protocol.TypeSubscribed, 0, "user:alice")
	command(t, fresh, `"id":1,"cmd":"subscribe","channel":"secret:x","token":"`+testkit.HS256(t, grant)+`"`)
	expectFrame(t, fresh, protocol.TypeSubscribed, 1, "secret:x")
	// /j's verifier, unchanged, still serves its kept connection.
	command(t, j, `"id":4,"cmd":"refresh","token":"`+idp.token(t, "k2", jwt.MapClaims{"sub": "alice", "exp": hour()})+`"`)
	expectFrame(t, j, protocol.TypeRefreshed, 4, "")
}
