package redisws

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

const (
	// corsMaxAge is how long, in seconds, a browser may keep a preflight
	// answer.
	corsMaxAge = "600"
	// anyOrigin in origins lets pages of every site use the route, without
	// credentials.
	anyOrigin = "*"
)

// defaultPorts are the ports an origin without one has.
var defaultPorts = map[string]string{"http": "80", "https": "443"}

// admitOrigin decides whether the request's Origin may use the route, and
// gives an allowed one the CORS headers that let its pages read the
// answer. It guards every method alike: a WebSocket has no CORS, and a POST
// from a page of another origin would otherwise publish before the browser
// looks at the answer's headers.
//
//   - No Origin: not a page's request (curl, a backend); allowed.
//   - The site's own origin, or one listed in origins: allowed with
//     credentials (cookies, HTTP auth); the answer names the origin, as the
//     CORS rules require with credentials.
//   - Any other, with origins *: allowed without credentials
//     (Access-Control-Allow-Origin: *). A request that carries them (Cookie,
//     Authorization) is refused: the browser would send them, and the
//     server act on them, before it read the answer. So is null, the
//     origin of sandboxed pages and local files, which any site can make.
func (h *Handler) admitOrigin(w http.ResponseWriter, r *http.Request) error {
	hdr := w.Header()
	hdr.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	key, ok := originKey(origin)
	own := ownOrigin(r)
	switch {
	case ok && (key == own || h.listed(key)):
		hdr.Set("Access-Control-Allow-Origin", origin)
		hdr.Set("Access-Control-Allow-Credentials", "true")
		return nil
	case !slices.Contains(h.Origins, anyOrigin):
		return fmt.Errorf("origin not allowed: %q is not this site's origin (%s) and not listed in origins", origin, own)
	case !ok:
		return fmt.Errorf("origin not allowed: %q is not a scheme://host[:port] origin (null is that of sandboxed pages and local files), which origins * does not cover", origin)
	case r.Header.Get("Cookie") != "" || r.Header.Get("Authorization") != "":
		return errors.New("origin not allowed with credentials: origins * lets every site in without cookies or HTTP auth; list this origin in origins for its pages to send them")
	}
	hdr.Set("Access-Control-Allow-Origin", anyOrigin)
	return nil
}

// listed tells whether origins names the origin key.
func (h *Handler) listed(key string) bool {
	for _, o := range h.Origins {
		if k, ok := originKey(o); ok && k == key {
			return true
		}
	}
	return false
}

// ownOrigin is the origin of the site the request was sent to, as
// originKey writes it: its Host, over https when the request came over TLS
// or, through a proxy the server trusts (trusted_proxies), when that
// proxy's X-Forwarded-Proto says so.
func ownOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",") // the first proxy's
		if proto = strings.ToLower(strings.TrimSpace(proto)); defaultPorts[proto] != "" {
			scheme = proto
		}
	}
	key, _ := originKey(scheme + "://" + r.Host)
	return key
}

// originKey writes an origin, scheme://host[:port], in the one form in
// which two origins are compared: scheme and host in lower case, the port
// written out (http://h is http://h:80); false when s is not an origin.
func originKey(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Opaque != "" || u.User != nil || u.Hostname() == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", false
	}
	port := u.Port()
	switch {
	case port == "" && strings.HasSuffix(u.Host, ":"):
		return "", false
	case port == "":
		port = defaultPorts[u.Scheme]
	default:
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", false
		}
	}
	return u.Scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port), true
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
