package redisws

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// checkCleanPath refuses a request whose decoded path is not already in the
// form Caddy's path matchers judge it in: no "." or ".." segment, no "//",
// nothing encoded (%2F, %2e) that decodes into them. The matchers (and so
// basic_auth /rooms/staff*) see /rooms/staff/../x as /rooms/x, while
// {http.request.uri.path.1} splits the path as it came and gives "staff":
// serving it would hand room:staff to a request that auth let through as
// /rooms/x. Refusing such paths, rather than cleaning them, keeps one
// answer for every placeholder and matcher, and no browser or client
// library sends them. The original path is checked too, for the
// {http.request.orig_uri.*} placeholders, when a rewrite changed it.
//
// What passes: a trailing slash (/rooms/a/), "*" (OPTIONS *, which Go
// answers itself on HTTP/1.1 and HTTP/2), %2F inside a segment
// (/rooms/a%2Fb is /rooms/a/b to both the matchers and the placeholders),
// upper case (the matchers ignore case, the channel keeps it), and a
// backslash, an ordinary character on every system but Windows, where
// caddyhttp.NormalizedPath makes it a separator, as the matchers do.
func checkCleanPath(r *http.Request) error {
	if err := cleanPath(r.URL.Path); err != nil {
		return err
	}
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil && orig.URL.Path != r.URL.Path {
		if err := cleanPath(orig.URL.Path); err != nil {
			return fmt.Errorf("before a rewrite, %w", err)
		}
	}
	return nil
}

// cleanPath checks one decoded path. An empty one (GET http://host
// HTTP/1.1) is refused: the matchers see it as ".", which a pattern such as
// /* does not match.
func cleanPath(p string) error {
	if p == "" {
		return errors.New(`the path is empty; the clean path is "/"`)
	}
	if clean := caddyhttp.NormalizedPath(p, true); clean != p {
		return fmt.Errorf("the path %q is not clean (a . or .. segment, //, or %%2F or %%2E that decode to them); the clean path is %q", p, clean)
	}
	return nil
}
