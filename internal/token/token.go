// Package token verifies signed tokens (JWT) and reads from them who the
// user is and which channels the token grants. It knows nothing of Caddy:
// the authentication provider at the repository root adapts it.
package token

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxSize is the longest token accepted, in bytes. A longer one is refused
// before it is parsed, so that no client makes a node decode and hash
// megabytes per request.
const MaxSize = 8 << 10

// ListSeparator joins the channel patterns of a claim into one placeholder
// value. It is a tab: a control character, which no channel name may hold,
// yet one an HTTP header value may carry.
const ListSeparator = "\t"

// Defaults of Options' claim names.
const (
	DefaultUserClaim      = "sub"
	DefaultSubscribeClaim = "redis_ws.subscribe"
	DefaultPublishClaim   = "redis_ws.publish"
)

// Options configure a Verifier.
type Options struct {
	// Keys is where the verification keys come from.
	Keys Keys
	// Issuer, when set, must be the token's iss.
	Issuer string
	// Audience, when set, must hold one of the token's aud values.
	Audience []string
	// ExpOptional accepts tokens without exp; by default exp is required.
	ExpOptional bool
	// Leeway is the clock skew allowed on exp and nbf.
	Leeway time.Duration
	// UserClaim names the claim holding the user id (default sub).
	UserClaim string
	// SubscribeClaim and PublishClaim name the claims holding the channel
	// patterns the token may subscribe and publish to (defaults
	// redis_ws.subscribe and redis_ws.publish).
	SubscribeClaim, PublishClaim string
	// Claims are further claims to read, each a string or a number.
	Claims []string
}

// Identity is what a verified token says.
type Identity struct {
	User      string
	Subscribe []string
	Publish   []string
	// Expires is the token's exp; zero when it has none.
	Expires time.Time
	// Claims holds those of Options.Claims the token has, as text.
	Claims map[string]string
}

// Verifier checks tokens against one configuration. It is safe for
// concurrent use.
type Verifier struct {
	opts   Options
	parser *jwt.Parser
	keys   keySource
}

// keySource finds the key of a token; wait bounds how long one request may
// wait for it (0: no waiting, the keys are in memory).
type keySource interface {
	keyfunc(ctx context.Context) jwt.Keyfunc
	methods() []string
	wait() time.Duration
}

// New builds a Verifier. A JWKS is fetched in the background for as long as
// ctx lasts: New does not wait for the network.
func New(ctx context.Context, opts Options) (*Verifier, error) {
	if opts.UserClaim == "" {
		opts.UserClaim = DefaultUserClaim
	}
	if opts.SubscribeClaim == "" {
		opts.SubscribeClaim = DefaultSubscribeClaim
	}
	if opts.PublishClaim == "" {
		opts.PublishClaim = DefaultPublishClaim
	}
	keys, err := opts.Keys.source(ctx)
	if err != nil {
		return nil, err
	}
	popts := []jwt.ParserOption{
		// The key decides the algorithms: never none, never an HMAC
		// check with a public key as the secret.
		jwt.WithValidMethods(keys.methods()),
		jwt.WithLeeway(opts.Leeway),
		// Numbers keep their text, so 12345678901 is not 1.2345678901e+10.
		jwt.WithJSONNumber(),
	}
	if !opts.ExpOptional {
		popts = append(popts, jwt.WithExpirationRequired())
	}
	if opts.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(opts.Issuer))
	}
	if len(opts.Audience) > 0 {
		popts = append(popts, jwt.WithAudience(opts.Audience...))
	}
	return &Verifier{opts: opts, parser: jwt.NewParser(popts...), keys: keys}, nil
}

// Verify checks a token and returns what it says. Its errors never hold
// the token or a claim's value; Reason names them in a word.
func (v *Verifier) Verify(ctx context.Context, raw string) (Identity, error) {
	if len(raw) > MaxSize {
		return Identity{}, errTooLarge
	}
	if w := v.keys.wait(); w > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w)
		defer cancel()
	}
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(raw, claims, v.keys.keyfunc(ctx)); err != nil {
		return Identity{}, err
	}
	return v.identity(claims)
}

var (
	errTooLarge   = fmt.Errorf("token is longer than %d bytes", MaxSize)
	errClaimType  = errors.New("a claim has the wrong type")
	errNoUser     = errors.New("the user claim is missing or empty")
	errControl    = errors.New("a claim holds a control character")
	errKeyUnknown = errors.New("no key is known for the token")
)

// Reason names why a token was refused, in words that are safe to log.
func Reason(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{errTooLarge, "too large"},
		{jwt.ErrTokenMalformed, "malformed"},
		{jwt.ErrTokenSignatureInvalid, "bad signature"},
		{jwt.ErrTokenExpired, "expired"},
		{jwt.ErrTokenNotValidYet, "not valid yet"},
		{jwt.ErrTokenInvalidIssuer, "wrong issuer"},
		{jwt.ErrTokenInvalidAudience, "wrong audience"},
		{jwt.ErrTokenRequiredClaimMissing, "missing claim"},
		{errClaimType, "claim type"},
		{jwt.ErrInvalidType, "claim type"},
		{errNoUser, "no user"},
		{errControl, "claim value"},
		{jwt.ErrTokenInvalidClaims, "invalid claims"},
		{errKeyUnknown, "unknown key"},
		{context.DeadlineExceeded, "key wait"},
		{jwt.ErrTokenUnverifiable, "unverifiable"},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "refused"
}

// identity reads the configured claims of a verified token.
func (v *Verifier) identity(claims jwt.MapClaims) (Identity, error) {
	var id Identity
	user, err := stringClaim(claims, v.opts.UserClaim)
	if err != nil {
		return Identity{}, err
	}
	if user == "" {
		return Identity{}, errNoUser
	}
	id.User = user
	if id.Subscribe, err = listClaim(claims, v.opts.SubscribeClaim); err != nil {
		return Identity{}, err
	}
	if id.Publish, err = listClaim(claims, v.opts.PublishClaim); err != nil {
		return Identity{}, err
	}
	exp, err := claims.GetExpirationTime()
	if err != nil {
		return Identity{}, err
	}
	if exp != nil {
		id.Expires = exp.Time
	}
	for _, name := range v.opts.Claims {
		val, ok, err := scalarClaim(claims, name)
		if err != nil {
			return Identity{}, err
		}
		if ok {
			if id.Claims == nil {
				id.Claims = make(map[string]string, len(v.opts.Claims))
			}
			id.Claims[name] = val
		}
	}
	return id, nil
}

// Join is a list claim as one placeholder value.
func Join(list []string) string { return strings.Join(list, ListSeparator) }
