package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testKeys holds one key of every type, generated once per run.
var testKeys = struct {
	secret []byte
	rsa    *rsa.PrivateKey
	p256   *ecdsa.PrivateKey
	p384   *ecdsa.PrivateKey
	p521   *ecdsa.PrivateKey
	ed     ed25519.PrivateKey
}{
	secret: []byte(strings.Repeat("s3cret!!", 8)), // 64 bytes
	rsa:    must(rsa.GenerateKey(rand.Reader, 2048)),
	p256:   must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)),
	p384:   must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)),
	p521:   must(ecdsa.GenerateKey(elliptic.P521(), rand.Reader)),
	ed:     must2(ed25519.GenerateKey(rand.Reader)),
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func must2[T any](_ any, v T, err error) T { return must(v, err) }

// pemOf is the PKIX PEM of a public key.
func pemOf(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// sign makes a token; kid is set when not empty.
func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("signing %s: %v", m.Alg(), err)
	}
	return s
}

// valid are claims that pass with default options.
func valid() jwt.MapClaims {
	return jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
}

func newVerifier(t testing.TB, o Options) *Verifier {
	t.Helper()
	v, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

func TestEveryKeyType(t *testing.T) {
	k := testKeys
	for _, c := range []struct {
		name   string
		keys   Keys
		method jwt.SigningMethod
		sign   any
	}{
		{"HS256", Keys{Secret: k.secret}, jwt.SigningMethodHS256, k.secret},
		{"HS384", Keys{Secret: k.secret}, jwt.SigningMethodHS384, k.secret},
		{"HS512", Keys{Secret: k.secret}, jwt.SigningMethodHS512, k.secret},
		{"RS256", Keys{PublicKey: pemOf(t, &k.rsa.PublicKey)}, jwt.SigningMethodRS256, k.rsa},
		{"RS512", Keys{PublicKey: pemOf(t, &k.rsa.PublicKey)}, jwt.SigningMethodRS512, k.rsa},
		{"PS256", Keys{PublicKey: pemOf(t, &k.rsa.PublicKey)}, jwt.SigningMethodPS256, k.rsa},
		{"RS256 PKCS1", Keys{PublicKey: pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})}, jwt.SigningMethodRS256, k.rsa},
		{"ES256", Keys{PublicKey: pemOf(t, &k.p256.PublicKey)}, jwt.SigningMethodES256, k.p256},
		{"ES384", Keys{PublicKey: pemOf(t, &k.p384.PublicKey)}, jwt.SigningMethodES384, k.p384},
		{"ES512", Keys{PublicKey: pemOf(t, &k.p521.PublicKey)}, jwt.SigningMethodES512, k.p521},
		{"EdDSA", Keys{PublicKey: pemOf(t, k.ed.Public())}, jwt.SigningMethodEdDSA, k.ed},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := newVerifier(t, Options{Keys: c.keys})
			id, err := v.Verify(context.Background(), sign(t, c.method, c.sign, "", valid()))
			if err != nil || id.User != "alice" {
				t.Fatalf("Verify = %+v, %v; want user alice", id, err)
			}
		})
	}
}

func TestRefusedKeys(t *testing.T) {
	small := must(rsa.GenerateKey(rand.Reader, 1024))
	priv := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(testKeys.p256))})
	for _, c := range []struct {
		name string
		keys Keys
		want string
	}{
		{"short secret", Keys{Secret: []byte("short")}, "at least 32"},
		{"small RSA", Keys{PublicKey: pemOf(t, &small.PublicKey)}, "at least 2048"},
		{"private key", Keys{PublicKey: priv}, "never a private key"},
		{"not PEM", Keys{PublicKey: []byte("hello")}, "not PEM"},
		{"none", Keys{}, "exactly one"},
		{"two", Keys{Secret: testKeys.secret, JWKSURL: "https://example.com/jwks"}, "exactly one"},
		{"bad URL", Keys{JWKSURL: "file:///etc/passwd"}, "http or https"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(context.Background(), Options{Keys: c.keys})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New = %v; want an error with %q", err, c.want)
			}
		})
	}
}

// TestHostileTokens: every one is refused, for a reason that names it and
// an error that does not hold the token.
func TestHostileTokens(t *testing.T) {
	k := testKeys
	rsaPEM := pemOf(t, &k.rsa.PublicKey)
	rsaV := newVerifier(t, Options{Keys: Keys{PublicKey: rsaPEM}})
	p256V := newVerifier(t, Options{Keys: Keys{PublicKey: pemOf(t, &k.p256.PublicKey)}})
	hsV := newVerifier(t, Options{Keys: Keys{Secret: k.secret[:32]}, Issuer: "https://issuer", Audience: []string{"chat", "api"}})
	with := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := valid()
		c["iss"], c["aud"] = "https://issuer", "chat"
		edit(c)
		return c
	}
	hs := func(edit func(jwt.MapClaims)) string {
		return sign(t, jwt.SigningMethodHS256, k.secret[:32], "", with(edit))
	}
	for _, c := range []struct {
		name, raw, reason string
		v                 *Verifier
	}{
		{"empty", "", "malformed", hsV},
		{"garbage", "not.a.token", "malformed", hsV},
		{"two parts", "eyJhbGciOiJIUzI1NiJ9.e30", "malformed", hsV},
		{"too large", strings.Repeat("a", MaxSize+1), "too large", hsV},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", valid()), "bad signature", hsV},
		{"HS with the RSA public key as secret", sign(t, jwt.SigningMethodHS256, rsaPEM, "", valid()), "bad signature", rsaV},
		{"HS512 with a 32-byte secret", sign(t, jwt.SigningMethodHS512, k.secret[:32], "", with(func(jwt.MapClaims) {})), "bad signature", hsV},
		{"RS for an ECDSA key", sign(t, jwt.SigningMethodRS256, k.rsa, "", valid()), "bad signature", p256V},
		{"ES384 for a P-256 key", sign(t, jwt.SigningMethodES384, k.p384, "", valid()), "bad signature", p256V},
		{"forged", sign(t, jwt.SigningMethodRS256, must(rsa.GenerateKey(rand.Reader, 2048)), "", valid()), "bad signature", rsaV},
		{"expired", hs(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), "expired", hsV},
		{"no exp", hs(func(c jwt.MapClaims) { delete(c, "exp") }), "missing claim", hsV},
		{"nbf ahead", hs(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }), "not valid yet", hsV},
		{"wrong iss", hs(func(c jwt.MapClaims) { c["iss"] = "https://evil" }), "wrong issuer", hsV},
		{"no iss", hs(func(c jwt.MapClaims) { delete(c, "iss") }), "missing claim", hsV},
		{"wrong aud", hs(func(c jwt.MapClaims) { c["aud"] = []string{"other"} }), "wrong audience", hsV},
		{"exp a string", hs(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }), "claim type", hsV},
		{"no sub", hs(func(c jwt.MapClaims) { delete(c, "sub") }), "no user", hsV},
		{"sub a number", hs(func(c jwt.MapClaims) { c["sub"] = 42 }), "claim type", hsV},
		{"sub with a newline", hs(func(c jwt.MapClaims) { c["sub"] = "a\nb" }), "claim value", hsV},
		{"subscribe a number", hs(func(c jwt.MapClaims) { c["redis_ws"] = map[string]any{"subscribe": 1} }), "claim type", hsV},
		{"subscribe with a number", hs(func(c jwt.MapClaims) { c["redis_ws"] = map[string]any{"subscribe": []any{"a", 2}} }), "claim type", hsV},
		{"subscribe with a tab", hs(func(c jwt.MapClaims) { c["redis_ws"] = map[string]any{"publish": []any{"a\tb"}} }), "claim value", hsV},
		{"subscribe empty pattern", hs(func(c jwt.MapClaims) { c["redis_ws"] = map[string]any{"subscribe": []any{""}} }), "claim type", hsV},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.v.Verify(context.Background(), c.raw)
			if err == nil {
				t.Fatal("accepted")
			}
			if got := Reason(err); got != c.reason {
				t.Errorf("Reason = %q (%v); want %q", got, err, c.reason)
			}
			if len(c.raw) > 20 && strings.Contains(err.Error(), c.raw[len(c.raw)-20:]) {
				t.Errorf("the error holds the token: %v", err)
			}
		})
	}
}

func TestTimeOptions(t *testing.T) {
	k := testKeys.secret
	expired := valid()
	expired["exp"] = time.Now().Add(-5 * time.Second).Unix()
	noExp := jwt.MapClaims{"sub": "bob"}
	v := newVerifier(t, Options{Keys: Keys{Secret: k}, Leeway: time.Minute, ExpOptional: true})
	for name, claims := range map[string]jwt.MapClaims{"within leeway": expired, "no exp": noExp} {
		if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, k, "", claims)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestClaims(t *testing.T) {
	k := testKeys.secret
	exp := time.Now().Add(time.Hour).Unix()
	claims := jwt.MapClaims{
		"uid":                    "u-7",
		"exp":                    exp,
		"redis_ws":               map[string]any{"subscribe": []any{"room:*", "user:u-7"}},
		"redis_ws.publish":       "room:lobby", // a flat key wins over the path
		"org":                    "acme",
		"n":                      12345678901,
		"https://example.com/id": "x",
		"obj":                    map[string]any{"a": 1},
	}
	v := newVerifier(t, Options{Keys: Keys{Secret: k}, UserClaim: "uid", Claims: []string{"org", "n", "https://example.com/id", "absent"}})
	id, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, k, "", claims))
	if err != nil {
		t.Fatal(err)
	}
	if id.User != "u-7" || Join(id.Subscribe) != "room:*\tuser:u-7" || Join(id.Publish) != "room:lobby" || id.Expires.Unix() != exp {
		t.Errorf("identity = %+v", id)
	}
	want := map[string]string{"org": "acme", "n": "12345678901", "https://example.com/id": "x"}
	if len(id.Claims) != len(want) {
		t.Errorf("claims = %v; want %v", id.Claims, want)
	}
	for k, w := range want {
		if id.Claims[k] != w {
			t.Errorf("claim %s = %q; want %q", k, id.Claims[k], w)
		}
	}
	v = newVerifier(t, Options{Keys: Keys{Secret: k}, UserClaim: "uid", Claims: []string{"obj"}})
	if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, k, "", claims)); Reason(err) != "claim type" {
		t.Errorf("an object claim: %v; want claim type", err)
	}
}
