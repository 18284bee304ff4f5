package token

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify: whatever a client sends, Verify answers without panicking;
// a refusal's error never holds the input, and an accepted token has a
// user fit for a channel name (the fuzzer cannot forge the HMAC, so only
// the seeds' valid tokens are accepted).
func FuzzVerify(f *testing.F) {
	secret := testKeys.secret[:32]
	mint := func(c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	exp := time.Now().Add(24 * time.Hour).Unix()
	for _, seed := range []string{
		mint(jwt.MapClaims{"sub": "alice", "exp": exp, "redis_ws": map[string]any{"subscribe": []string{"room:*"}}}),
		mint(jwt.MapClaims{"sub": "bob", "exp": 1}),
		mint(jwt.MapClaims{"sub": []string{"x"}, "exp": exp}),
		must(jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "eve"}).SignedString(jwt.UnsafeAllowNoneSignatureType)),
		"", ".", "..", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.", strings.Repeat("A", MaxSize+1),
	} {
		f.Add(seed)
	}
	v := newVerifier(f, Options{Keys: Keys{Secret: secret}, Claims: []string{"org"}})
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := v.Verify(context.Background(), raw)
		if err != nil {
			if len(raw) >= 24 && strings.Contains(err.Error(), raw) {
				t.Fatalf("the error holds the token: %v", err)
			}
			if Reason(err) == "" {
				t.Fatal("no reason")
			}
			return
		}
		if id.User == "" || strings.IndexFunc(id.User, unicode.IsControl) >= 0 {
			t.Fatalf("accepted user %q", id.User)
		}
	})
}
