package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Keys is where verification keys come from: exactly one of Secret,
// PublicKey and JWKSURL is set.
type Keys struct {
	// Secret is an HMAC secret (HS256, HS384, HS512), at least 32 bytes.
	Secret []byte
	// PublicKey is a PEM block: PUBLIC KEY (RSA, ECDSA or Ed25519), RSA
	// PUBLIC KEY, or a CERTIFICATE whose key is used.
	PublicKey []byte
	// JWKSURL is a JSON Web Key Set, fetched in the background.
	JWKSURL string
	// JWKSTimeout bounds a fetch of the set and a request's wait for it.
	JWKSTimeout time.Duration
	// JWKSRefresh is how often the set is fetched again.
	JWKSRefresh time.Duration
	// JWKSError, if set, hears of each failed fetch.
	JWKSError func(error)
}

// minSecret is the shortest HMAC secret accepted: RFC 7518 §3.2 wants a
// key at least as long as the hash, so HS384 and HS512 need 48 and 64.
const minSecret = 32

func (k Keys) source(ctx context.Context) (keySource, error) {
	set := 0
	for _, ok := range []bool{len(k.Secret) > 0, len(k.PublicKey) > 0, k.JWKSURL != ""} {
		if ok {
			set++
		}
	}
	if set != 1 {
		return nil, errors.New("exactly one of a secret, a public key and a JWKS URL is needed")
	}
	switch {
	case len(k.Secret) > 0:
		return hmacKey(k.Secret)
	case len(k.PublicKey) > 0:
		return publicKey(k.PublicKey)
	}
	return startJWKS(ctx, k)
}

// staticKey is one key known at start, with the algorithms its type allows.
type staticKey struct {
	key     any
	allowed []string
}

func (s staticKey) keyfunc(context.Context) jwt.Keyfunc {
	return func(*jwt.Token) (any, error) { return s.key, nil }
}
func (s staticKey) methods() []string   { return s.allowed }
func (s staticKey) wait() time.Duration { return 0 }

func hmacKey(secret []byte) (staticKey, error) {
	if len(secret) < minSecret {
		return staticKey{}, fmt.Errorf("the secret is %d bytes long; HMAC needs at least %d", len(secret), minSecret)
	}
	allowed := []string{"HS256"}
	if len(secret) >= 48 {
		allowed = append(allowed, "HS384")
	}
	if len(secret) >= 64 {
		allowed = append(allowed, "HS512")
	}
	return staticKey{key: secret, allowed: allowed}, nil
}

// publicKey reads one PEM block and allows the algorithms of its key type
// (and, for ECDSA, of its curve).
func publicKey(data []byte) (staticKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return staticKey{}, errors.New("the public key is not PEM")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		return staticKey{}, fmt.Errorf("the PEM block is %q; a PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE is needed (never a private key)", block.Type)
	}
	if err != nil {
		return staticKey{}, fmt.Errorf("parsing the public key: %w", err)
	}
	allowed, err := keyMethods(key)
	return staticKey{key: key, allowed: allowed}, err
}

// minRSABits is the smallest RSA modulus accepted (NIST SP 800-131A).
const minRSABits = 2048

func keyMethods(key any) ([]string, error) {
	switch key := key.(type) {
	case *rsa.PublicKey:
		if key.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("the RSA key has %d bits; at least %d are needed", key.N.BitLen(), minRSABits)
		}
		return rsaMethods, nil
	case *ecdsa.PublicKey:
		switch key.Curve.Params().BitSize {
		case 256:
			return []string{"ES256"}, nil
		case 384:
			return []string{"ES384"}, nil
		case 521:
			return []string{"ES512"}, nil
		}
		return nil, fmt.Errorf("the ECDSA curve %s has no JWT algorithm", key.Curve.Params().Name)
	case ed25519.PublicKey:
		return []string{"EdDSA"}, nil
	}
	return nil, fmt.Errorf("a %T key has no JWT algorithm here", key)
}

var rsaMethods = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}

// asymmetricMethods are those a JWKS may serve keys for: a published set
// holds public keys, so no HMAC.
var asymmetricMethods = append(slices.Clone(rsaMethods), "ES256", "ES384", "ES512", "EdDSA")
