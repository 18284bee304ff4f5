package redisws

import (
	"encoding/base64"
	"net/http"
	"strings"
)

// handshakeRefusal is how gorilla/websocket v1.5.3's Upgrader.Upgrade
// would refuse an upgrade: its status (0: it would not) and why; over HTTP/2
// or HTTP/3 400 where gorilla answers 500. It is
// checked before anything asks Redis, so that a refused upgrade subscribes
// nothing and reads nothing; after it, Upgrade fails only on I/O, or on
// bytes the client sent before the answer, which it finds once it has taken
// the connection over. The checks are Upgrade's, in its order, but for the
// Connection and Upgrade tokens (ServeHTTP sends here only requests with
// both) and the origin (originAllowed, before).
func handshakeRefusal(r *http.Request) (int, string) {
	switch {
	case r.Method != http.MethodGet:
		return http.StatusMethodNotAllowed, "a WebSocket upgrade must be a GET, not " + r.Method
	case !headerHasToken(r.Header, "Sec-WebSocket-Version", "13"):
		return http.StatusBadRequest, "unsupported WebSocket version: 13 not found in the Sec-WebSocket-Version header"
	case !validChallengeKey(r.Header.Get("Sec-WebSocket-Key")):
		return http.StatusBadRequest, "the Sec-WebSocket-Key header must be 16 bytes in base64"
	case r.ProtoMajor != 1:
		// Only an HTTP/1.x connection can be taken over (hijacked). gorilla
		// answers 500 when it cannot; it is the client's request that cannot
		// be served (over HTTP/2 and HTTP/3 an upgrade is a CONNECT, which
		// gorilla does not speak), so 400.
		return http.StatusBadRequest, "a WebSocket upgrade needs HTTP/1.1, not " + r.Proto
	}
	return 0, ""
}

// refuseHandshake answers a refused upgrade as gorilla would, with a body
// that says why: the version the server speaks, and the methods for 405.
func (h *Handler) refuseHandshake(w http.ResponseWriter, status int, reason string) error {
	w.Header().Set("Sec-WebSocket-Version", "13")
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", h.allowedMethods())
	}
	return refuse(w, status, reason)
}

// validChallengeKey is gorilla's check of Sec-WebSocket-Key (RFC 6455
// §4.1): 16 bytes in base64.
func validChallengeKey(key string) bool {
	b, err := base64.StdEncoding.DecodeString(key)
	return key != "" && err == nil && len(b) == 16
}

// headerHasToken reads a header that is a comma-separated list of tokens as
// gorilla does: each value is read up to the first thing that is neither a
// token nor a comma, and tokens compare without ASCII case.
func headerHasToken(header http.Header, name, want string) bool {
	for _, v := range header.Values(name) {
		for {
			v = strings.TrimLeft(v, " \t")
			n := 0
			for n < len(v) && isTokenChar(v[n]) {
				n++
			}
			token, rest := v[:n], strings.TrimLeft(v[n:], " \t")
			if token == "" || rest != "" && rest[0] != ',' {
				break
			}
			if strings.EqualFold(token, want) {
				return true
			}
			if rest == "" {
				break
			}
			v = rest[1:]
		}
	}
	return false
}

// isTokenChar tells whether c may be part of a token (RFC 7230 §3.2.6).
func isTokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
