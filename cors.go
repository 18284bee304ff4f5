package redisws

import (
	"net/http"
	"net/url"
	"strings"
)

// corsMaxAge is how long, in seconds, a browser may keep a preflight answer.
const corsMaxAge = "600"

// originAllowed applies Origins; without them, only the request's own host
// may connect from a browser. It guards every method alike: a WebSocket
// has no CORS, and a POST from a page of another origin would otherwise
// publish before the browser looks at the answer's headers.
func (h *Handler) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if len(h.Origins) == 0 {
		u, err := url.Parse(origin)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
	for _, o := range h.Origins {
		if o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}

// allowOrigin gives an allowed origin the CORS headers that let its pages
// read the answer, with credentials (cookies, HTTP auth): the answer names
// the origin itself, as the CORS rules require with credentials.
func (h *Handler) allowOrigin(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Origin")
	if origin := r.Header.Get("Origin"); origin != "" {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Access-Control-Allow-Credentials", "true")
	}
}

// serveOptions answers OPTIONS, and the CORS preflight of an allowed origin:
// its methods, and the request headers it asks for (Content-Type,
// Idempotency-Key, Last-Event-ID, or whatever its auth needs).
func (h *Handler) serveOptions(w http.ResponseWriter, r *http.Request) error {
	hdr := w.Header()
	hdr.Set("Allow", h.allowedMethods())
	if r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != "" {
		hdr.Set("Access-Control-Allow-Methods", h.allowedMethods())
		if asked := r.Header.Get("Access-Control-Request-Headers"); asked != "" {
			hdr.Set("Access-Control-Allow-Headers", asked)
		}
		hdr.Set("Access-Control-Max-Age", corsMaxAge)
		hdr.Add("Vary", "Access-Control-Request-Method")
		hdr.Add("Vary", "Access-Control-Request-Headers")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
