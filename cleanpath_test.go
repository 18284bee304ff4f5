package redisws

// Paths that are not clean: the matchers judge a request by its cleaned
// path, the channel placeholders read the path as it came, so a path with
// dot segments, // or their encoded forms is refused before anything else.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// checkCleanPath in process: the cases of cleanpath_nodes_test.go, and a
// rewrite that cleaned a dirty path (the original path is what
// {http.request.orig_uri.*} reads).
func TestCheckCleanPath(t *testing.T) {
	for p, clean := range map[string]bool{
		"/": true, "/rooms/a": true, "/rooms/a/": true, "*": true, "/rooms/A": true, `/rooms/a\..\b`: true, "/rooms/%2e%2e": true,
		"": false, "/rooms/./a": false, "/rooms/a/..": false, "/rooms/a/.": false, "//rooms": false, "/rooms//a": false, "/rooms/a/../b/": false,
	} {
		if err := cleanPath(p); (err == nil) != clean {
			t.Errorf("%q: %v, want clean %v", p, err, clean)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/a", nil)
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.OriginalRequestCtxKey, http.Request{URL: &url.URL{Path: "/x/../a"}}))
	if err := checkCleanPath(r); err == nil || !strings.Contains(err.Error(), "before a rewrite") {
		t.Errorf("rewritten from a dirty path: %v", err)
	}
}
