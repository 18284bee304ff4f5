package redisws

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

// TestTokenVerifierShared: providers with the same settings and keys share
// one verifier, which outlives the first one's Cleanup (a reload); a secret
// file rewritten before the next load gives a new verifier, and the old one
// is retired with its last provider.
func TestTokenVerifierShared(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	write := func(s string) {
		if err := os.WriteFile(secret, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	provision := func() *TokenAuth {
		a := &TokenAuth{SecretFile: secret}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		defer cancel()
		if err := a.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		return a
	}
	cleanup := func(a *TokenAuth) {
		if err := a.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
	write(testkit.TestSecret)
	first, second := provision(), provision()
	if first.verifier != second.verifier {
		t.Fatal("two providers of the same settings and keys have two verifiers")
	}
	cleanup(first)
	if second.verifier.retired.Load() {
		t.Fatal("the verifier was retired while a provider still uses it")
	}
	write(testkit.TestSecret + "-rotated")
	third := provision()
	defer cleanup(third)
	if third.verifier == second.verifier {
		t.Fatal("a rewritten secret file kept the old verifier")
	}
	cleanup(second)
	if !second.verifier.retired.Load() || third.verifier.retired.Load() {
		t.Fatalf("retired: old %v, new %v; want true, false", second.verifier.retired.Load(), third.verifier.retired.Load())
	}
}
