package e2e

// The origin check and CORS through a real node, for each kind of request
// a page can make: a preflight, an event stream, a POST, a WebSocket.

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// originOutcome is what a request from an origin gets.
type originOutcome int

const (
	credentialed originOutcome = iota // its origin echoed, with credentials
	anonymous                         // Access-Control-Allow-Origin: *, no credentials
	forbidden                         // 403, nothing done
)

// originCase is a request's Origin (and Host, credentials...) on a path.
type originCase struct {
	name, path string
	header     http.Header
	want       originOutcome
	reason     string // in the body of a 403
}

// expectOrigin sends the case as a preflight, an event stream, a POST and a
// WebSocket upgrade, and checks each got what the case wants. It returns the
// bodies of the POSTs that were let through.
func expectOrigin(t *testing.T, n *caddyNode, c originCase) (posted []string) {
	t.Helper()
	with := func(extra ...string) http.Header {
		h := http.Header{}
		for k, v := range c.header {
			h[k] = v
		}
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return h
	}
	body := "POST: " + c.name
	for _, kind := range []struct {
		name, method string
		header       http.Header
		ok           int
	}{
		{"preflight", http.MethodOptions, with("Access-Control-Request-Method", "POST"), http.StatusNoContent},
		{"event stream", http.MethodGet, with("Accept", "text/event-stream"), http.StatusOK},
		{"POST", http.MethodPost, with(), http.StatusOK},
		{"WebSocket", http.MethodGet, upgradeHeader(), http.StatusSwitchingProtocols},
	} {
		if kind.name == "WebSocket" {
			for k, v := range c.header {
				kind.header[k] = v
			}
		}
		reqBody := ""
		if kind.method == http.MethodPost {
			reqBody = body
		}
		r := rawRequest(t, n, kind.method, c.path, kind.header, reqBody)
		acao, acac := r.Header.Get("Access-Control-Allow-Origin"), r.Header.Get("Access-Control-Allow-Credentials")
		var ok bool
		switch c.want {
		case forbidden:
			ok = r.Status == http.StatusForbidden && strings.Contains(r.Body, "origin not allowed") && strings.Contains(r.Body, c.reason) && acao == "" && acac == ""
		case credentialed:
			ok = r.Status == kind.ok && (kind.name == "WebSocket" || acao == c.header.Get("Origin") && acac == "true")
		case anonymous:
			ok = r.Status == kind.ok && (kind.name == "WebSocket" || acao == "*" && acac == "")
		}
		if !ok {
			t.Errorf("%s, %s: %d, Access-Control-Allow-Origin %q, -Credentials %q, body %q; want %v %s", c.name, kind.name, r.Status, acao, acac, r.Body, c.want, c.reason)
		}
		if kind.method == http.MethodPost && r.Status == http.StatusOK {
			posted = append(posted, body)
		}
	}
	return posted
}

func (o originOutcome) String() string {
	return [...]string{"credentialed", "anonymous", "forbidden"}[o]
}

// origins * lets every site in without credentials: Access-Control-Allow-
// Origin: *, never Allow-Credentials; a request of another site that
// carries a cookie or HTTP auth is refused (the server would act on them
// before the browser read the answer), and so is Origin: null. Listed
// origins, and the site's own, keep their credentials; nothing refused is
// published.
func TestOriginsAny(t *testing.T) {
	rs := startRedis(t)
	n := startNode(t, "node", siteCaddyfile("", `
	redis_ws /any chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		origins *
	}
	redis_ws /mixed chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		origins https://app.example.com *
	}`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
	watcher := dialWS(t, n.WSURL("/any"), nil)
	own := fmt.Sprintf("http://127.0.0.1:%d", n.Port)
	const evil, app = "https://evil.example", "https://app.example.com"
	from := func(origin string, extra ...string) http.Header {
		h := http.Header{"Origin": {origin}}
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return h
	}
	const withCredentials = "list this origin in origins"
	var posted []string
	for _, c := range []originCase{
		{"another site, no credentials", "/any", from(evil), anonymous, ""},
		{"another site with a cookie", "/any", from(evil, "Cookie", "session=alice"), forbidden, withCredentials},
		{"another site with HTTP auth", "/any", from(evil, "Authorization", basicAuth("alice")), forbidden, withCredentials},
		{"null", "/any", from("null"), forbidden, "null"},
		{"null with a cookie", "/any", from("null", "Cookie", "session=alice"), forbidden, "null"},
		{"not an origin", "/any", from("https://evil.example/path"), forbidden, "not a scheme://host[:port] origin"},
		{"the site's own origin with a cookie", "/any", from(own, "Cookie", "session=alice"), credentialed, ""},
		{"a listed origin with a cookie", "/mixed", from(app, "Cookie", "session=alice"), credentialed, ""},
		{"a listed origin, its default port written", "/mixed", from(app+":443", "Cookie", "session=alice"), credentialed, ""},
		{"another site beside a listed one, no credentials", "/mixed", from(evil), anonymous, ""},
		{"another site beside a listed one, with a cookie", "/mixed", from(evil, "Cookie", "session=alice"), forbidden, withCredentials},
	} {
		posted = append(posted, expectOrigin(t, n, c)...)
	}
	mustPost(t, n.URL("/any"), "last")
	for i, m := range watcher.Collect(t, len(posted)+1, wait) {
		if want := append(posted, "last")[i]; string(m.Data) != want {
			t.Fatalf("message %d is %q, want %q: a refused POST was published", i, m.Data, want)
		}
	}
}

// Without origins, a page of the site itself may use the route: same
// scheme, host and port, default ports written or not; the scheme is https
// over TLS or, through a proxy the server trusts, as its X-Forwarded-Proto
// says (anyone else's header is ignored).
func TestOriginDefault(t *testing.T) {
	rs := startRedis(t)
	route := `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
	}`
	env := map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)}
	direct := startNode(t, "direct", siteCaddyfile("", route), env)
	proxied := startNode(t, "proxied", siteCaddyfile("\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}", route), env)
	h := func(kv ...string) http.Header {
		hdr := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			hdr.Set(kv[i], kv[i+1])
		}
		return hdr
	}
	const notOwn = "is not this site's origin"
	for _, tc := range []struct {
		n *caddyNode
		originCase
	}{
		{direct, originCase{"the site's own origin", "/ws", h("Origin", fmt.Sprintf("http://127.0.0.1:%d", direct.Port)), credentialed, ""}},
		{direct, originCase{"https for an http site", "/ws", h("Origin", fmt.Sprintf("https://127.0.0.1:%d", direct.Port)), forbidden, notOwn}},
		{direct, originCase{"another port", "/ws", h("Origin", fmt.Sprintf("http://127.0.0.1:%d", direct.Port+1)), forbidden, notOwn}},
		{direct, originCase{"the default port written in the origin", "/ws", h("Host", "h.example", "Origin", "http://h.example:80"), credentialed, ""}},
		{direct, originCase{"the default port written in the host", "/ws", h("Host", "h.example:80", "Origin", "http://h.example"), credentialed, ""}},
		{direct, originCase{"upper case in the host", "/ws", h("Host", "H.Example", "Origin", "http://h.example"), credentialed, ""}},
		{direct, originCase{"the port of https for http", "/ws", h("Host", "h.example", "Origin", "http://h.example:443"), forbidden, notOwn}},
		{direct, originCase{"X-Forwarded-Proto from anyone", "/ws", h("Host", "h.example", "X-Forwarded-Proto", "https", "Origin", "https://h.example"), forbidden, notOwn}},
		{proxied, originCase{"X-Forwarded-Proto from a trusted proxy", "/ws", h("Host", "h.example", "X-Forwarded-Proto", "https", "Origin", "https://h.example"), credentialed, ""}},
		{proxied, originCase{"its default port", "/ws", h("Host", "h.example", "X-Forwarded-Proto", "https", "Origin", "https://h.example:443"), credentialed, ""}},
		{proxied, originCase{"http when the proxy says https", "/ws", h("Host", "h.example", "X-Forwarded-Proto", "https", "Origin", "http://h.example"), forbidden, notOwn}},
		{proxied, originCase{"the first proxy's scheme", "/ws", h("Host", "h.example", "X-Forwarded-Proto", "https, http", "Origin", "https://h.example"), credentialed, ""}},
		{proxied, originCase{"the request's own scheme without the header", "/ws", h("Host", "h.example", "Origin", "http://h.example"), credentialed, ""}},
	} {
		expectOrigin(t, tc.n, tc.originCase)
	}
}
