package redisws

import (
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// tokenExpiry is when the token that authenticated the request expires:
// {http.auth.user.exp}, Unix seconds, which redis_ws_token sets from the
// token's exp; the zero time when there is none (no token, exp_optional, a
// provider that sets no such number).
func tokenExpiry(repl *caddy.Replacer) time.Time {
	if repl == nil {
		return time.Time{}
	}
	v, _ := repl.GetString("http.auth.user.exp")
	exp, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(exp, 0)
}

// expired tells whether a connection with this expiry would end at once:
// its token passed exp during the handshake (or before, within the
// provider's leeway, which lets the request in but no connection last).
func expired(exp time.Time) bool { return !exp.IsZero() && !time.Now().Before(exp) }

// errTokenExpired refuses a connection whose token expired before it opened.
var errTokenExpired = &refusal{http.StatusUnauthorized, "the token expired; connect again with a fresh one"}
