package redisws

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"go.uber.org/zap"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/token"
)

func init() {
	caddy.RegisterModule(new(TokenAuth))
	httpcaddyfile.RegisterHandlerDirective("redis_ws_token", parseTokenCaddyfile)
	// Authentication comes before every handler that reads its placeholders.
	httpcaddyfile.RegisterDirectiveOrder("redis_ws_token", httpcaddyfile.Before, "basic_auth")
}

// TokenAuth is an authentication provider that verifies signed tokens
// (JWT). The user and the claims it verified become the placeholders
// {http.auth.user.id}, {http.auth.user.subscribe},
// {http.auth.user.publish}, {http.auth.user.exp} and
// {http.auth.user.<claim>} for every later handler of the route. A request
// without a valid token gets 401.
type TokenAuth struct {
	// Secret is an HMAC secret (HS256; HS384 from 48 bytes, HS512 from
	// 64), at least 32 bytes. Placeholders such as {env.JWT_SECRET} are
	// replaced at start.
	Secret string `json:"secret,omitempty"`
	// SecretFile is a file holding the HMAC secret (a final newline is
	// dropped).
	SecretFile string `json:"secret_file,omitempty"`
	// PublicKey is a PEM public key (RSA: RS*/PS*; ECDSA: the ES* of its
	// curve; Ed25519: EdDSA), or a certificate holding one.
	PublicKey string `json:"public_key,omitempty"`
	// PublicKeyFile is a file holding PublicKey.
	PublicKeyFile string `json:"public_key_file,omitempty"`
	// JWKSURL is a JSON Web Key Set (RS*, PS*, ES*, EdDSA keys), fetched in
	// the background, again every JWKSRefresh, and when a token names a
	// kid it lacks (at most once a minute).
	JWKSURL string `json:"jwks_url,omitempty"`
	// JWKSTimeout bounds a fetch of the set and how long a request may
	// wait for it. Default: 5s.
	JWKSTimeout caddy.Duration `json:"jwks_timeout,omitempty"`
	// JWKSRefresh is how often the set is fetched again. Default: 1h.
	JWKSRefresh caddy.Duration `json:"jwks_refresh,omitempty"`

	// Issuer, when set, must be the token's iss.
	Issuer string `json:"issuer,omitempty"`
	// Audience, when set, must hold one of the token's aud values.
	Audience []string `json:"audience,omitempty"`
	// ExpOptional accepts tokens without exp. Default: exp is required.
	ExpOptional bool `json:"exp_optional,omitempty"`
	// Leeway is the clock skew allowed on exp and nbf. Default: 0.
	Leeway caddy.Duration `json:"leeway,omitempty"`

	// UserClaim names the claim holding the user id. Default: sub.
	UserClaim string `json:"user_claim,omitempty"`
	// SubscribeClaim names the claim holding the channel patterns the token
	// may subscribe to. Default: redis_ws.subscribe.
	SubscribeClaim string `json:"subscribe_claim,omitempty"`
	// PublishClaim names the claim holding the channel patterns the token
	// may publish to. Default: redis_ws.publish.
	PublishClaim string `json:"publish_claim,omitempty"`
	// Claims are further claims, each a string or a number, exposed as
	// {http.auth.user.<claim>} when the token has them.
	Claims []string `json:"claims,omitempty"`

	// Sources are where a token is looked for, in order: header
	// (Authorization: Bearer), subprotocol (redis_ws.token.<token>),
	// cookie, query. Default: all four, in that order.
	Sources []string `json:"sources,omitempty"`
	// Cookie names the cookie holding a token. Default: redis_ws_token.
	Cookie string `json:"cookie,omitempty"`
	// Query names the query parameter holding a token. Default:
	// access_token.
	Query string `json:"query,omitempty"`

	verifier    *pooledVerifier // shared across reloads: see token_pool.go
	verifierKey string
	sources     token.Sources
	logger      *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*TokenAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.authentication.providers.redis_ws_token",
		New: func() caddy.Module { return new(TokenAuth) },
	}
}

// Provision checks the settings, reads the key and takes the process's
// verifier of these settings and keys, made and its JWKS fetch started in
// the background when there is none: it never waits for the network.
func (a *TokenAuth) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if err := a.Validate(); err != nil {
		return err
	}
	keys, err := a.keys()
	if err != nil {
		return err
	}
	if a.verifierKey, err = verifierKey(a, keys); err != nil {
		return err
	}
	logger := a.logger
	keys.JWKSError = func(err error) { logger.Warn("fetching the JWKS", zap.Error(err)) }
	a.verifier, err = loadVerifier(a.verifierKey, token.Options{
		Keys:           keys,
		Issuer:         a.Issuer,
		Audience:       a.Audience,
		ExpOptional:    a.ExpOptional,
		Leeway:         time.Duration(a.Leeway),
		UserClaim:      a.UserClaim,
		SubscribeClaim: a.SubscribeClaim,
		PublishClaim:   a.PublishClaim,
		Claims:         a.Claims,
	})
	if err != nil {
		return fmt.Errorf("redis_ws_token: %w", err)
	}
	a.sources = token.Sources{Order: a.Sources, Cookie: a.Cookie, Query: a.Query}
	return nil
}

// Cleanup releases the verifier: the last configuration that used it
// retires it and stops its JWKS fetches.
func (a *TokenAuth) Cleanup() error {
	if a.verifier == nil {
		return nil
	}
	_, err := verifiers.Delete(a.verifierKey)
	return err
}

// keys reads the key material, replacing global placeholders ({env.*},
// {file.*}) first.
func (a *TokenAuth) keys() (token.Keys, error) {
	repl := caddy.NewReplacer()
	k := token.Keys{
		JWKSURL:     repl.ReplaceKnown(a.JWKSURL, ""),
		JWKSTimeout: time.Duration(a.JWKSTimeout),
		JWKSRefresh: time.Duration(a.JWKSRefresh),
	}
	if a.Secret != "" {
		k.Secret = []byte(repl.ReplaceKnown(a.Secret, ""))
	}
	if a.PublicKey != "" {
		k.PublicKey = []byte(repl.ReplaceKnown(a.PublicKey, ""))
	}
	for _, f := range []struct {
		setting, path string
		into          *[]byte
	}{{"secret_file", a.SecretFile, &k.Secret}, {"public_key_file", a.PublicKeyFile, &k.PublicKey}} {
		if f.path == "" {
			continue
		}
		data, err := os.ReadFile(repl.ReplaceKnown(f.path, ""))
		if err != nil {
			return token.Keys{}, fmt.Errorf("redis_ws_token: %s: %w", f.setting, err)
		}
		if f.setting == "secret_file" {
			data = trimNewline(data)
		}
		*f.into = data
	}
	return k, nil
}

func trimNewline(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// reservedMetadata are the placeholders the provider sets itself.
var reservedMetadata = []string{"id", "subscribe", "publish", "exp"}

// Validate checks the settings that need no file nor network.
func (a *TokenAuth) Validate() error {
	keys := 0
	for _, set := range []string{a.Secret, a.SecretFile, a.PublicKey, a.PublicKeyFile, a.JWKSURL} {
		if set != "" {
			keys++
		}
	}
	switch {
	case keys != 1:
		return errors.New("redis_ws_token: exactly one of secret, secret_file, public_key, public_key_file and jwks_url is needed")
	case a.JWKSURL == "" && (a.JWKSTimeout != 0 || a.JWKSRefresh != 0):
		return errors.New("redis_ws_token: jwks_timeout and jwks_refresh need jwks_url")
	case a.JWKSTimeout < 0 || a.JWKSRefresh < 0:
		return errors.New("redis_ws_token: jwks_timeout and jwks_refresh cannot be negative")
	case a.Leeway < 0:
		return errors.New("redis_ws_token: leeway cannot be negative")
	}
	for _, c := range a.Claims {
		if c == "" || slices.Contains(reservedMetadata, c) || strings.ContainsAny(c, "{} \t\n") {
			return fmt.Errorf("redis_ws_token: claims: %q cannot name a placeholder (not empty, not one of %v, no braces or spaces)", c, reservedMetadata)
		}
	}
	for i, s := range a.Sources {
		if !slices.Contains(token.DefaultSources, s) {
			return fmt.Errorf("redis_ws_token: sources: %q is not one of %v", s, token.DefaultSources)
		}
		if slices.Contains(a.Sources[:i], s) {
			return fmt.Errorf("redis_ws_token: sources: %q is listed twice", s)
		}
	}
	return nil
}

// Authenticate verifies the request's token. A missing or refused token is
// no error (Caddy would log it at Error and try the next provider either
// way): it is logged at Debug by its source and reason, never its text.
func (a *TokenAuth) Authenticate(w http.ResponseWriter, r *http.Request) (caddyauth.User, bool, error) {
	raw, source := a.sources.Find(r)
	if raw == "" {
		w.Header().Set("WWW-Authenticate", "Bearer")
		return caddyauth.User{}, false, nil
	}
	id, err := a.verifier.Verify(r.Context(), raw)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		a.logger.Debug("token refused", zap.String("source", source), zap.String("reason", token.Reason(err)))
		return caddyauth.User{}, false, nil
	}
	meta := map[string]string{
		"subscribe": token.Join(id.Subscribe),
		"publish":   token.Join(id.Publish),
	}
	if !id.Expires.IsZero() {
		meta["exp"] = strconv.FormatInt(id.Expires.Unix(), 10)
	}
	for k, v := range id.Claims {
		meta[k] = v
	}
	handOnVerifier(r, a.verifier)
	return caddyauth.User{ID: id.User, Metadata: meta}, true, nil
}

// Interface guards
var (
	_ caddy.Provisioner       = (*TokenAuth)(nil)
	_ caddy.CleanerUpper      = (*TokenAuth)(nil)
	_ caddy.Validator         = (*TokenAuth)(nil)
	_ caddyauth.Authenticator = (*TokenAuth)(nil)
)
