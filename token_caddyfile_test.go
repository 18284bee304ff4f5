package redisws

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func parseToken(input string) (*TokenAuth, error) {
	a := new(TokenAuth)
	err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	return a, err
}

func TestTokenCaddyfileEverySubdirective(t *testing.T) {
	a, err := parseToken(`redis_ws_token {
		jwks_url https://idp.example/jwks.json
		jwks_timeout 2s
		jwks_refresh 30m
		issuer https://idp.example
		audience chat api
		exp_optional
		leeway 30s
		user_claim uid
		subscribe_claim mercure.subscribe
		publish_claim mercure.publish
		claims org role
		sources subprotocol query
		cookie session_token
		query token
	}`)
	if err != nil {
		t.Fatal(err)
	}
	want := &TokenAuth{
		JWKSURL: "https://idp.example/jwks.json", JWKSTimeout: caddy.Duration(2 * time.Second), JWKSRefresh: caddy.Duration(30 * time.Minute),
		Issuer: "https://idp.example", Audience: []string{"chat", "api"}, ExpOptional: true, Leeway: caddy.Duration(30 * time.Second),
		UserClaim: "uid", SubscribeClaim: "mercure.subscribe", PublishClaim: "mercure.publish", Claims: []string{"org", "role"},
		Sources: []string{"subprotocol", "query"}, Cookie: "session_token", Query: "token",
	}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("got  %+v\nwant %+v", a, want)
	}
	for _, key := range []string{"secret s", "secret_file /run/secret", "public_key pem", "public_key_file /k.pem"} {
		if _, err := parseToken("redis_ws_token {\n\t" + key + "\n}"); err != nil {
			t.Errorf("%s: %v", key, err)
		}
	}
}

func TestTokenCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		input string
		line  int
		want  string
	}{
		{"redis_ws_token", 1, "exactly one of secret, secret_file, public_key, public_key_file and jwks_url"},
		{"redis_ws_token {\n\tsecret a\n\tjwks_url https://x\n}", 1, "exactly one of"},
		{"redis_ws_token hs256", 1, `unexpected argument "hs256"`},
		{"redis_ws_token {\n\tsecret a\n\tbogus 1\n}", 3, `unrecognized subdirective "bogus"`},
		{"redis_ws_token {\n\tsecret a\n\tsecret b\n}", 3, "secret is already set"},
		{"redis_ws_token {\n\tsecret\n}", 2, "wrong argument count"},
		{"redis_ws_token {\n\tsecret a b\n}", 2, "wrong argument count"},
		{"redis_ws_token {\n\tsecret a\n\tleeway 30\n}", 3, `leeway: "30" is not a positive duration`},
		{"redis_ws_token {\n\tsecret a\n\tjwks_timeout 1s\n}", 1, "jwks_timeout and jwks_refresh need jwks_url"},
		{"redis_ws_token {\n\tsecret a\n\texp_optional yes\n}", 3, "wrong argument count"},
		{"redis_ws_token {\n\tsecret a\n\taudience\n}", 3, "wrong argument count"},
		{"redis_ws_token {\n\tsecret a\n\tclaims org subscribe\n}", 1, `claims: "subscribe" cannot name a placeholder`},
		{"redis_ws_token {\n\tsecret a\n\tclaims \"{x}\"\n}", 1, `claims: "{x}" cannot name a placeholder`},
		{"redis_ws_token {\n\tsecret a\n\tsources header form\n}", 1, `sources: "form" is not one of [header subprotocol cookie query]`},
		{"redis_ws_token {\n\tsecret a\n\tsources query query\n}", 1, `sources: "query" is listed twice`},
	} {
		_, err := parseToken(tc.input)
		if err == nil {
			t.Errorf("%q: no error", tc.input)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) || !strings.HasSuffix(msg, "Testfile:"+strconv.Itoa(tc.line)) {
			t.Errorf("%q:\n got %q\nwant %q at Testfile:%d", tc.input, msg, tc.want, tc.line)
		}
	}
}

// The directive adapts to the authentication handler with our provider,
// ordered before redis_ws whatever the order written.
func TestTokenAdapt(t *testing.T) {
	src := `:8080 {
	redis_ws /ws user:{http.auth.user.id}
	redis_ws_token /ws {
		secret {env.JWT_SECRET}
		audience chat
	}
}
`
	got, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), nil)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("adapt: %v %v", err, warnings)
	}
	want := `{"apps":{"http":{"servers":{"srv0":{"listen":[":8080"],"routes":[{"match":[{"path":["/ws"]}],"handle":[` +
		`{"handler":"authentication","providers":{"redis_ws_token":{"audience":["chat"],"secret":"{env.JWT_SECRET}"}}},` +
		`{"handler":"redis_ws","subscribe":["user:{http.auth.user.id}"]}]}]}}}}}`
	if string(got) != want {
		t.Errorf("adapted to\n%s\nwant\n%s", got, want)
	}
}
