package redisws

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
)

// parseTokenCaddyfile builds the authentication handler with the token
// provider as its one provider, as basic_auth does with its own.
func parseTokenCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	a := new(TokenAuth)
	if err := a.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return caddyauth.Authentication{
		ProvidersRaw: caddy.ModuleMap{"redis_ws_token": caddyconfig.JSON(a, nil)},
	}, nil
}

// UnmarshalCaddyfile sets up the provider from Caddyfile tokens:
//
//	redis_ws_token [<matcher>] {
//		secret <secret>
//		secret_file <path>
//		public_key <pem>
//		public_key_file <path>
//		jwks_url <url>
//		jwks_timeout <duration>
//		jwks_refresh <duration>
//		issuer <iss>
//		audience <aud...>
//		exp_optional
//		leeway <duration>
//		user_claim <name>
//		subscribe_claim <name>
//		publish_claim <name>
//		claims <name...>
//		sources header|subprotocol|cookie|query...
//		cookie <name>
//		query <name>
//	}
//
// Exactly one of the five key settings is needed; every setting may appear
// once. Defaults are applied at provision.
func (a *TokenAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	line := d.Line()
	if d.NextArg() {
		return d.Errf("unexpected argument %q: redis_ws_token takes its settings in a block", d.Val())
	}
	seen := make(map[string]bool)
	for d.NextBlock(0) {
		name := d.Val()
		if seen[name] {
			return d.Errf("%s is already set", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "secret":
			a.Secret, err = oneArg(d)
		case "secret_file":
			a.SecretFile, err = oneArg(d)
		case "public_key":
			a.PublicKey, err = oneArg(d)
		case "public_key_file":
			a.PublicKeyFile, err = oneArg(d)
		case "jwks_url":
			a.JWKSURL, err = oneArg(d)
		case "jwks_timeout":
			a.JWKSTimeout, err = parseDuration(d)
		case "jwks_refresh":
			a.JWKSRefresh, err = parseDuration(d)
		case "issuer":
			a.Issuer, err = oneArg(d)
		case "audience":
			a.Audience, err = someArgs(d)
		case "exp_optional":
			a.ExpOptional = true
			if d.NextArg() {
				err = d.ArgErr()
			}
		case "leeway":
			a.Leeway, err = parseDuration(d)
		case "user_claim":
			a.UserClaim, err = oneArg(d)
		case "subscribe_claim":
			a.SubscribeClaim, err = oneArg(d)
		case "publish_claim":
			a.PublishClaim, err = oneArg(d)
		case "claims":
			a.Claims, err = someArgs(d)
		case "sources":
			a.Sources, err = someArgs(d)
		case "cookie":
			a.Cookie, err = oneArg(d)
		case "query":
			a.Query, err = oneArg(d)
		default:
			err = d.Errf("unrecognized subdirective %q", name)
		}
		if err != nil {
			return err
		}
	}
	if err := a.Validate(); err != nil {
		return fmt.Errorf("%w, at %s:%d", err, d.File(), line)
	}
	return nil
}

// someArgs reads one argument or more.
func someArgs(d *caddyfile.Dispenser) ([]string, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.ArgErr()
	}
	return args, nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*TokenAuth)(nil)
