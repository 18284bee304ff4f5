package token

import (
	"net/http"
	"strings"
)

// Where a token may come from, in the order Sources tries them by default.
const (
	// SourceHeader is Authorization: Bearer <token>.
	SourceHeader = "header"
	// SourceSubprotocol is a WebSocket subprotocol SubprotocolPrefix+<token>,
	// for browsers, which cannot set headers on a WebSocket.
	SourceSubprotocol = "subprotocol"
	// SourceCookie is a cookie of a configured name.
	SourceCookie = "cookie"
	// SourceQuery is a query parameter of a configured name, for
	// EventSource, which can send neither headers nor subprotocols.
	SourceQuery = "query"
)

// DefaultSources is every source, in the default order.
var DefaultSources = []string{SourceHeader, SourceSubprotocol, SourceCookie, SourceQuery}

// SubprotocolPrefix starts an offered subprotocol that carries a token. A
// JWT is three base64url parts joined by dots, all characters a
// subprotocol may hold, so it follows the prefix as it is.
const SubprotocolPrefix = "redis_ws.token."

// Defaults of Sources' names.
const (
	DefaultCookie = "redis_ws_token"
	// DefaultQuery is the parameter RFC 6750 §2.3 names.
	DefaultQuery = "access_token"
)

// Sources finds a request's token.
type Sources struct {
	// Order lists the sources tried (DefaultSources when empty).
	Order []string
	// Cookie and Query name the cookie and the query parameter.
	Cookie, Query string
}

// Find returns the token of the first source in Order that has one, and
// that source; "" when none has. A later source is not tried when an
// earlier one holds a token, even a bad one.
func (s Sources) Find(r *http.Request) (raw, source string) {
	order := s.Order
	if len(order) == 0 {
		order = DefaultSources
	}
	for _, src := range order {
		if raw = s.from(r, src); raw != "" {
			return raw, src
		}
	}
	return "", ""
}

func (s Sources) from(r *http.Request, src string) string {
	switch src {
	case SourceHeader:
		scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
	case SourceSubprotocol:
		for _, line := range r.Header.Values("Sec-WebSocket-Protocol") {
			for p := range strings.SplitSeq(line, ",") {
				if tok, ok := strings.CutPrefix(strings.TrimSpace(p), SubprotocolPrefix); ok {
					return tok
				}
			}
		}
	case SourceCookie:
		if c, err := r.Cookie(or(s.Cookie, DefaultCookie)); err == nil {
			return c.Value
		}
	case SourceQuery:
		return r.URL.Query().Get(or(s.Query, DefaultQuery))
	}
	return ""
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
