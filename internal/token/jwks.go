package token

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// Defaults of Keys' JWKS settings.
const (
	DefaultJWKSTimeout = 5 * time.Second
	DefaultJWKSRefresh = time.Hour
)

// unknownKidEvery is how often at most a token with a kid the set lacks
// makes the set be fetched again. Tokens with made-up kids then cost one
// fetch a minute, however many arrive; a key the issuer has just added is
// picked up within a minute.
const unknownKidEvery = time.Minute

// jwksKeys is a JWKS fetched in the background. keyfunc builds its store
// with a first fetch that may take JWKSTimeout; requests that come before
// it is done wait for it within their own bound.
type jwksKeys struct {
	ready   chan struct{}
	kf      keyfunc.Keyfunc // set before ready is closed
	err     error
	timeout time.Duration
}

func startJWKS(ctx context.Context, k Keys) (*jwksKeys, error) {
	u, err := url.Parse(k.JWKSURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("the JWKS URL is not an http or https URL")
	}
	timeout, refresh := k.JWKSTimeout, k.JWKSRefresh
	if timeout <= 0 {
		timeout = DefaultJWKSTimeout
	}
	if refresh <= 0 {
		refresh = DefaultJWKSRefresh
	}
	override := keyfunc.Override{
		HTTPTimeout:       timeout,
		RefreshInterval:   refresh,
		RateLimitWaitMax:  timeout,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(unknownKidEvery), 1),
		// keyfunc would log to slog's default logger otherwise.
		RefreshErrorHandlerFunc: func(string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				if k.JWKSError != nil {
					k.JWKSError(err)
				}
			}
		},
	}
	j := &jwksKeys{ready: make(chan struct{}), timeout: timeout}
	go func() {
		defer close(j.ready)
		j.kf, j.err = keyfunc.NewDefaultOverrideCtx(ctx, []string{k.JWKSURL}, override)
	}()
	return j, nil
}

func (j *jwksKeys) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		select {
		case <-j.ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the JWKS: %w", ctx.Err())
		}
		if j.err != nil {
			return nil, fmt.Errorf("loading the JWKS: %w", j.err)
		}
		// keyfunc fails when the set has no key for the token's kid and
		// alg, even after a refresh (or when the refresh must wait).
		key, err := j.kf.KeyfuncCtx(ctx)(t)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errKeyUnknown, err)
		}
		return key, nil
	}
}

func (j *jwksKeys) methods() []string   { return asymmetricMethods }
func (j *jwksKeys) wait() time.Duration { return j.timeout }
