package redisws

import (
	"context"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/token"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// Tokens inside a command connection (refresh, a subscribe's token) are
// verified by the verifier of the redis_ws_token provider that
// authenticated the request: the same keys, issuer, audience, leeway and
// claim names, and no second configuration. The provider hands it on in a
// request variable. It is shared across reloads (token_pool.go): once no
// configuration has its settings, it is retired and verifies nothing more.

// verifierVar names the request variable; {http.vars.redis_ws_token}
// prints only tokenVerifier's String.
const verifierVar = "redis_ws_token"

// tokenVerifier is the variable's value. Its String says nothing of the
// keys: caddy.ToString uses it for a placeholder.
type tokenVerifier struct{ v *pooledVerifier }

func (tokenVerifier) String() string { return "redis_ws_token" }

// handOnVerifier is the provider's, for a request it authenticated.
func handOnVerifier(r *http.Request, v *pooledVerifier) {
	caddyhttp.SetVar(r.Context(), verifierVar, tokenVerifier{v})
}

// connTokens is what a command connection verifies tokens with: nil
// verifier when no redis_ws_token authenticated it.
type connTokens struct {
	verifier *pooledVerifier
	user     string // {http.auth.user.id}; "" none
}

func requestTokens(r *http.Request, repl *caddy.Replacer) connTokens {
	tv, _ := caddyhttp.GetVar(r.Context(), verifierVar).(tokenVerifier)
	user, _ := repl.GetString("http.auth.user.id")
	return connTokens{verifier: tv.v, user: user}
}

// verify checks a command's token: valid, and of the connection's user
// when it has one.
func (t connTokens) verify(raw string) (token.Identity, *cmdRefusal) {
	if t.verifier == nil {
		return token.Identity{}, refuseCmd(protocol.ErrInvalidToken, "tokens are not verified on this route")
	}
	if t.verifier.retired.Load() {
		return token.Identity{}, settingsChanged(protocol.ErrInvalidToken)
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandWait)
	defer cancel()
	id, err := t.verifier.Verify(ctx, raw)
	switch {
	case err != nil:
		return token.Identity{}, refuseCmd(protocol.ErrInvalidToken, "the token is refused: "+token.Reason(err))
	case t.user != "" && id.User != t.user:
		return token.Identity{}, refuseCmd(protocol.ErrInvalidToken, "the token names another user than the connection's")
	case expired(id.Expires): // within the leeway: it would end the connection at once
		return token.Identity{}, refuseCmd(protocol.ErrInvalidToken, "the token expired")
	}
	return id, nil
}

var refreshNotEnabled = refuseCmd(protocol.ErrNotEnabled, "token refresh needs a connection authenticated by redis_ws_token")

// settingsChanged refuses a token on a connection kept across a reload that
// changed redis_ws_token's settings or keys: only a new connection gets
// them. A refresh says not_enabled, on which a client reconnects.
func settingsChanged(code string) *cmdRefusal {
	return refuseCmd(code, "the route's redis_ws_token settings changed since the connection opened; connect again")
}

// refresh without a channel moves the connection's end to the new token's
// exp (none: it stays open). The connection's rules keep the lists of the
// token it opened with: they were resolved then, once. With a channel, it
// moves the end of a channel a subscribe's token granted to the exp of a
// new token that grants it.
func (cs *commands) refresh(ch, raw string) (*protocol.Frame, *cmdRefusal) {
	switch {
	case cs.tokens.verifier == nil:
		return nil, refreshNotEnabled
	case ch == "" && cs.tokens.verifier.retired.Load():
		return nil, settingsChanged(protocol.ErrNotEnabled)
	}
	var exp time.Time
	if ch == "" {
		id, r := cs.tokens.verify(raw)
		if r != nil {
			return nil, r
		}
		exp = id.Expires
		cs.c.ExpireAt(exp)
	} else {
		var r *cmdRefusal
		if exp, r = cs.channelToken(ch, raw); r != nil {
			return nil, r
		}
		if _, ok := cs.granted[ch]; !ok {
			return nil, refuseCmd(protocol.ErrNotSubscribed, "the connection follows no channel of this name by a token that expires (an expired one was unsubscribed)")
		}
		cs.grantedUntil(ch, exp)
	}
	f := &protocol.Frame{Type: protocol.TypeRefreshed, Channel: ch}
	if !exp.IsZero() {
		f.Exp = exp.Unix()
	}
	return f, nil
}

// channelToken tells whether a command's token grants ch, and until when
// (zero: no exp).
func (cs *commands) channelToken(ch, raw string) (time.Time, *cmdRefusal) {
	id, r := cs.tokens.verify(raw)
	if r != nil {
		return time.Time{}, r
	}
	if !grants(id.Subscribe, ch) {
		return time.Time{}, refuseCmd(protocol.ErrInvalidToken, "the token does not grant this channel")
	}
	return id.Expires, nil
}
