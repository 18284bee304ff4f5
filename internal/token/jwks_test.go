package token

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// jwksServer serves a JWKS on loopback and counts its fetches. Until gate
// is closed (if set), every fetch waits: a JWKS that does not answer.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	set     []byte
	fetches atomic.Int64
	gate    chan struct{}
}

func newJWKSServer(t *testing.T, slow bool, keys map[string]any) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	if slow {
		s.gate = make(chan struct{})
	}
	s.publish(t, keys)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if s.gate != nil {
			select {
			case <-s.gate:
			case <-r.Context().Done():
				return
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.set)
	}))
	t.Cleanup(s.Close)
	if slow {
		t.Cleanup(func() { close(s.gate) }) // before Close, which waits for handlers
	}
	return s
}

// publish replaces the set with these public keys, by kid.
func (s *jwksServer) publish(t *testing.T, keys map[string]any) {
	t.Helper()
	var set jwkset.JWKSMarshal
	for kid, pub := range keys {
		jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid}})
		if err != nil {
			t.Fatalf("JWK of %s: %v", kid, err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.set = data
	s.mu.Unlock()
}

// jwksVerifier verifies against srv until the test ends; fetch errors are
// counted.
func jwksVerifier(t *testing.T, url string, timeout time.Duration) (*Verifier, *atomic.Int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var failed atomic.Int64
	v, err := New(ctx, Options{Keys: Keys{JWKSURL: url, JWKSTimeout: timeout, JWKSError: func(error) { failed.Add(1) }}})
	if err != nil {
		t.Fatal(err)
	}
	return v, &failed
}

func TestJWKS(t *testing.T) {
	k := testKeys
	srv := newJWKSServer(t, false, map[string]any{"r": &k.rsa.PublicKey, "e": &k.p256.PublicKey, "d": k.ed.Public()})
	v, _ := jwksVerifier(t, srv.URL, 0)
	ctx := context.Background()
	for _, c := range []struct {
		kid    string
		method jwt.SigningMethod
		key    any
	}{{"r", jwt.SigningMethodRS256, k.rsa}, {"r", jwt.SigningMethodPS384, k.rsa}, {"e", jwt.SigningMethodES256, k.p256}, {"d", jwt.SigningMethodEdDSA, k.ed}, {"", jwt.SigningMethodES256, k.p256}} {
		if _, err := v.Verify(ctx, sign(t, c.method, c.key, c.kid, valid())); err != nil {
			t.Errorf("%s kid %q: %v", c.method.Alg(), c.kid, err)
		}
	}
	// An ECDSA token that names the RSA key, and an HMAC one signed with
	// a public key's bytes, are refused.
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodES256, k.p256, "r", valid())); err == nil {
		t.Error("ES256 with the RSA key's kid was accepted")
	}
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodHS256, pemOf(t, &k.rsa.PublicKey), "r", valid())); Reason(err) != "bad signature" {
		t.Errorf("HS256 against a JWKS: %v; want bad signature", err)
	}
}

// TestJWKSUnknownKids: a rotated key is found by one refresh; a storm of
// made-up kids costs no more fetches than that one.
func TestJWKSUnknownKids(t *testing.T) {
	k := testKeys
	srv := newJWKSServer(t, false, map[string]any{"old": &k.p256.PublicKey})
	v, _ := jwksVerifier(t, srv.URL, 0)
	ctx := context.Background()
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodES256, k.p256, "old", valid())); err != nil {
		t.Fatal(err)
	}
	srv.publish(t, map[string]any{"old": &k.p256.PublicKey, "new": &k.p384.PublicKey})
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodES384, k.p384, "new", valid())); err != nil {
		t.Fatalf("the rotated key: %v", err)
	}
	before := srv.fetches.Load()
	for i := range 50 {
		_, err := v.Verify(ctx, sign(t, jwt.SigningMethodES256, k.p256, fmt.Sprint("made-up-", i), valid()))
		if Reason(err) != "unknown key" {
			t.Fatalf("made-up kid %d: %v; want unknown key", i, err)
		}
	}
	if got := srv.fetches.Load(); got != before {
		t.Errorf("50 made-up kids fetched the set %d times after the rotation's refresh; want none within the minute", got-before)
	}
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodES256, k.p256, "old", valid())); err != nil {
		t.Errorf("a known kid during the storm: %v", err)
	}
}

// TestJWKSUnreachable: a set that never answers, or whose server is gone,
// makes requests fail within the timeout instead of hanging.
func TestJWKSUnreachable(t *testing.T) {
	tok := sign(t, jwt.SigningMethodES256, testKeys.p256, "k", valid())
	t.Run("slow", func(t *testing.T) {
		srv := newJWKSServer(t, true, map[string]any{"k": &testKeys.p256.PublicKey})
		v, _ := jwksVerifier(t, srv.URL, 100*time.Millisecond)
		for range 3 {
			if _, err := v.Verify(context.Background(), tok); err == nil {
				t.Fatal("accepted without a key")
			}
		}
	})
	t.Run("down", func(t *testing.T) {
		srv := newJWKSServer(t, false, nil)
		srv.Close()
		v, failed := jwksVerifier(t, srv.URL, time.Second)
		if _, err := v.Verify(context.Background(), tok); Reason(err) != "unknown key" {
			t.Fatalf("Verify: %v; want unknown key", err)
		}
		if failed.Load() == 0 {
			t.Error("the failed fetch was not reported")
		}
	})
}
