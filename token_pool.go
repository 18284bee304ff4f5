package redisws

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/token"
)

// A connection kept across a reload verifies its refresh and per-channel
// tokens with the verifier that authenticated it. So that it keeps working
// (a JWKS still fetched, a new kid still found) while the configuration
// holds the same redis_ws_token, verifiers are shared across reloads like
// the Redis broker: one per settings and key material per process, alive
// while a configuration uses it, its JWKS fetched under its own context
// rather than the provider's, which ends at the old configuration's
// Cleanup. A reload that changes the settings or the keys (a rewritten
// secret_file) makes a new verifier; the old one is retired with the last
// configuration that had it, and connections that still hold it are told
// to connect again.
var verifiers = caddy.NewUsagePool()

// pooledVerifier is a verifier as the pool holds it.
type pooledVerifier struct {
	*token.Verifier
	cancel  context.CancelFunc // stops its JWKS fetches
	retired atomic.Bool        // no configuration uses it any more
}

func (p *pooledVerifier) Destruct() error {
	p.retired.Store(true)
	p.cancel()
	return nil
}

// verifierKey names a verifier by the provider's settings as written and
// the key material they resolved to.
func verifierKey(a *TokenAuth, keys token.Keys) (string, error) {
	settings, err := json.Marshal(a)
	if err != nil {
		return "", fmt.Errorf("encoding redis_ws_token's settings: %w", err)
	}
	h := sha256.New()
	for _, part := range [][]byte{settings, keys.Secret, keys.PublicKey, []byte(keys.JWKSURL)} {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// loadVerifier returns the shared verifier of these settings and keys,
// made with opts when the process has none; the caller releases it with
// verifiers.Delete(key).
func loadVerifier(key string, opts token.Options) (*pooledVerifier, error) {
	val, _, err := verifiers.LoadOrNew(key, func() (caddy.Destructor, error) {
		ctx, cancel := context.WithCancel(context.Background())
		v, err := token.New(ctx, opts)
		if err != nil {
			cancel()
			return nil, err
		}
		return &pooledVerifier{Verifier: v, cancel: cancel}, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(*pooledVerifier), nil
}
