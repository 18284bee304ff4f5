package redisws

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
)

func provisionToken(t *testing.T, a *TokenAuth) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	t.Cleanup(func() {
		if err := a.Cleanup(); err != nil {
			t.Error(err)
		}
	})
	return a.Provision(ctx)
}

// TestTokenAuthenticate: what a verified token puts in the placeholders,
// and the 401's challenge without it.
func TestTokenAuthenticate(t *testing.T) {
	t.Setenv("REDIS_WS_TEST_SECRET", testkit.TestSecret)
	a := &TokenAuth{Secret: "{env.REDIS_WS_TEST_SECRET}", Claims: []string{"org", "level"}}
	if err := provisionToken(t, a); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	tok := testkit.HS256(t, jwt.MapClaims{
		"sub": "alice", "exp": exp, "org": "acme", "level": 3,
		"redis_ws": map[string]any{"subscribe": []string{"room:*", "user:alice"}, "publish": "room:*"},
	})
	r := httptest.NewRequest(http.MethodGet, "/ws?access_token="+tok, nil)
	w := httptest.NewRecorder()
	user, ok, err := a.Authenticate(w, r)
	if err != nil || !ok {
		t.Fatalf("Authenticate = %v, %v", ok, err)
	}
	want := map[string]string{"subscribe": "room:*\tuser:alice", "publish": "room:*", "exp": strconv.FormatInt(exp, 10), "org": "acme", "level": "3"}
	if user.ID != "alice" || len(user.Metadata) != len(want) {
		t.Errorf("user = %+v; want alice with %v", user, want)
	}
	for k, v := range want {
		if user.Metadata[k] != v {
			t.Errorf("%s = %q; want %q", k, user.Metadata[k], v)
		}
	}

	for name, c := range map[string]struct {
		r         *http.Request
		challenge string
	}{
		"none":    {httptest.NewRequest(http.MethodGet, "/ws", nil), "Bearer"},
		"expired": {httptest.NewRequest(http.MethodGet, "/ws?access_token="+testkit.HS256(t, jwt.MapClaims{"sub": "a", "exp": 1}), nil), `Bearer error="invalid_token"`},
	} {
		w := httptest.NewRecorder()
		if _, ok, err := a.Authenticate(w, c.r); ok || err != nil {
			t.Errorf("%s: Authenticate = %v, %v; want refused without an error", name, ok, err)
		}
		if got := w.Header().Get("WWW-Authenticate"); got != c.challenge {
			t.Errorf("%s: WWW-Authenticate = %q; want %q", name, got, c.challenge)
		}
	}
}

// TestTokenKeyFiles: a secret file loses its final newline; a missing or
// bad key file is named in the error.
func TestTokenKeyFiles(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte(testkit.TestSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &TokenAuth{SecretFile: secret}
	if err := provisionToken(t, a); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+testkit.HS256(t, jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Minute).Unix()}))
	if _, ok, _ := a.Authenticate(httptest.NewRecorder(), r); !ok {
		t.Error("a token signed with the file's secret was refused")
	}
	for _, c := range []struct {
		a    *TokenAuth
		want string
	}{
		{&TokenAuth{SecretFile: filepath.Join(dir, "absent")}, "secret_file: open"},
		{&TokenAuth{PublicKeyFile: secret}, "the public key is not PEM"},
		{&TokenAuth{Secret: "short"}, "HMAC needs at least 32"},
		{&TokenAuth{JWKSURL: "ftp://idp"}, "not an http or https URL"},
	} {
		if err := provisionToken(t, c.a); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v; want %q", c.a, err, c.want)
		}
	}
}
