package redisws

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gorilla/websocket"
)

// retryAfter is the Retry-After, in seconds, of a 503 for max_connections.
const retryAfter = "10"

// ServeHTTP answers every request of the route: a WebSocket upgrade or a
// GET for an event stream subscribes, a POST publishes, an OPTIONS gets the
// methods (and the CORS preflight answer). Whatever Caddy puts before the
// handler (auth, matchers) applies to all of them alike, and so do the
// refusals of a path that is not clean and of an origin not allowed,
// before anything else is done.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if err := checkCleanPath(r); err != nil {
		return refuse(w, http.StatusBadRequest, err.Error())
	}
	if err := h.admitOrigin(w, r); err != nil {
		return refuse(w, http.StatusForbidden, err.Error())
	}
	// The request's placeholders (its path, its user) name its channels.
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	switch {
	case websocket.IsWebSocketUpgrade(r):
		return h.serveWebSocket(w, r, repl)
	case r.Method == http.MethodGet && accepts(r, "text/event-stream"):
		return h.serveStream(w, r, repl)
	case r.Method == http.MethodGet && h.Presence != nil && accepts(r, "application/json"):
		return h.servePresence(w, r, repl)
	case r.Method == http.MethodGet:
		return refuse(w, http.StatusBadRequest, h.getHint())
	case r.Method == http.MethodPost:
		return h.servePost(w, r, repl)
	case r.Method == http.MethodOptions:
		return h.serveOptions(w, r)
	}
	w.Header().Set("Allow", h.allowedMethods())
	return refuse(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed here; allowed: %s", r.Method, h.allowedMethods()))
}

// allowedMethods are the methods the route answers; POST only when it
// publishes.
func (h *Handler) allowedMethods() string {
	if h.publish == "" {
		return "GET, OPTIONS"
	}
	return "GET, POST, OPTIONS"
}

// getHint is the answer to a GET the route does not serve.
func (h *Handler) getHint() string {
	hint := "connect with a WebSocket client, or with an EventSource (Accept: text/event-stream); POST publishes"
	if h.Presence != nil {
		hint += "; Accept: application/json asks who is present"
	}
	return hint
}

// accepts tells whether a request's Accept names the media type.
func accepts(r *http.Request, mediaType string) bool {
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			media, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(media), mediaType) {
				return true
			}
		}
	}
	return false
}

// refuseWith answers a request refused by err: with a *refusal's status,
// 400 for any other error. A 401 tells a bearer token's client to get a
// fresh one (RFC 6750 §3).
func refuseWith(w http.ResponseWriter, err error) error {
	status := http.StatusBadRequest
	if r := (*refusal)(nil); errors.As(err, &r) {
		status = r.status
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	return refuse(w, status, err.Error())
}

// refuse answers a request that will not be served, with a plain body that
// says why.
func refuse(w http.ResponseWriter, status int, reason string) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, err := fmt.Fprintf(w, "redis_ws: %s\n", reason)
	return err
}
