package e2e

// Event streams beyond plain HTTP/1.1 on one node: over HTTP/2 and HTTP/3
// (tls internal), cross-origin with CORS, and under the limits WebSocket
// clients have: max_connections, send_queue (a stream not read is closed
// alone) and ping_interval.

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/gorilla/websocket"
	"github.com/quic-go/quic-go/http3"
)

// An event stream works over HTTP/2 and HTTP/3, where a WebSocket does
// not: POSTs over either reach both streams, and so does what a wss://
// client sends; a stream over HTTP/2 resumes with Last-Event-ID.
func TestEventStreamHTTP2AndHTTP3(t *testing.T) {
	rs := startRedis(t)
	n := tlsInternalNode(t, rs, "history 100 1h")
	// One tls.Config each: a transport sets the protocols it offers in it.
	roots := internalRoots(t, n)
	h2Transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	t.Cleanup(h2Transport.CloseIdleConnections)
	h3Transport := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	t.Cleanup(func() { _ = h3Transport.Close() })
	clients := []struct {
		proto  int
		client *http.Client
	}{{2, &http.Client{Transport: h2Transport}}, {3, &http.Client{Transport: h3Transport}}}
	url := fmt.Sprintf("https://localhost:%d/ws", n.Port)

	var streams []*sseClient
	for _, c := range clients {
		var s *sseClient
		var err error
		testkit.Eventually(t, wait, func() bool { // the certificate is issued in the background
			s, err = tryDialSSE(t, c.client, url, nil)
			return err == nil
		}, "no event stream over HTTP/%d: %v", c.proto, atFailure(func() any { return err }))
		if s.Resp.ProtoMajor != c.proto {
			t.Fatalf("stream over %s, want HTTP/%d", s.Resp.Proto, c.proto)
		}
		streams = append(streams, s)
	}
	expect := func(s *sseClient, want ...string) {
		t.Helper()
		got := s.Collect(t, len(want), wait)
		for i := range got {
			if got[i].Data != want[i] {
				t.Fatalf("stream over %s: %v, want %q", s.Resp.Proto, got, want)
			}
		}
	}

	for i, c := range clients {
		r := postMessageVia(t, c.client, url, fmt.Sprintf("over HTTP/%d", c.proto), nil)
		if r.Status != http.StatusOK || r.Answer.Channel != "chat" || r.Answer.Offset != int64(i+1) {
			t.Fatalf("POST over HTTP/%d: %d %q, want 200 with chat at offset %d", c.proto, r.Status, r.Body, i+1)
		}
	}
	ws, _, err := (&websocket.Dialer{HandshakeTimeout: wait, TLSClientConfig: &tls.Config{RootCAs: roots}}).Dial(fmt.Sprintf("wss://localhost:%d/ws", n.Port), nil)
	if err != nil {
		t.Fatalf("wss: %v", err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte("over wss")); err != nil {
		t.Fatal(err)
	}
	for _, s := range streams {
		expect(s, "over HTTP/2", "over HTTP/3", "over wss")
	}

	first, err := protocol.ParseEventID(streams[0].LastID())
	if err != nil {
		t.Fatal(err)
	}
	epoch := first[0].Epoch
	resumed, err := tryDialSSE(t, clients[0].client, url, http.Header{"Last-Event-ID": {epoch + ":1"}})
	if err != nil {
		t.Fatal(err)
	}
	expect(resumed, "over HTTP/3", "over wss")
	resumed.ExpectNothing(t, 200*time.Millisecond)
}

// A route with origins gives those origins the CORS headers, for streams,
// POSTs and preflights, and refuses any other origin with 403: a refused
// POST publishes nothing. A route without origins allows its own host
// only.
func TestEventStreamCORS(t *testing.T) {
	rs := startRedis(t)
	n := startNode(t, "node", siteCaddyfile("", `
	redis_ws /app chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		origins https://app.example.com
	}
	redis_ws /own chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
	respond /health 200`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
	const app, evil = "https://app.example.com", "https://evil.example"
	from := func(origin string) http.Header { return http.Header{"Origin": {origin}} }
	checkAllowed := func(what string, h http.Header) {
		t.Helper()
		if h.Get("Access-Control-Allow-Origin") != app || h.Get("Access-Control-Allow-Credentials") != "true" || !slices.Contains(h.Values("Vary"), "Origin") {
			t.Fatalf("%s: headers %v, want Access-Control-Allow-Origin %s with credentials, Vary: Origin", what, h, app)
		}
	}
	checkRefused := func(what string, status int, h http.Header, body string) {
		t.Helper()
		if status != http.StatusForbidden || !strings.Contains(body, "origin not allowed") || h.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("%s: %d %v %q, want 403 naming the origin, without CORS headers", what, status, h, body)
		}
	}
	refusedStream := func(url string, header http.Header) *sseRefused {
		t.Helper()
		_, err := tryDialSSE(t, sseHTTP, url, header)
		var refused *sseRefused
		if !errors.As(err, &refused) {
			t.Fatalf("stream %s with %v: %v, want a refusal", url, header, err)
		}
		return refused
	}

	stream := dialSSE(t, n.URL("/app"), from(app))
	checkAllowed("stream", stream.Resp.Header)
	r := postMessage(t, n.URL("/app"), "from the app", from(app))
	if r.Status != http.StatusOK {
		t.Fatalf("POST from the app: %d %q", r.Status, r.Body)
	}
	checkAllowed("POST", r.Header)
	if e := stream.Next(t, wait); e.Data != "from the app" {
		t.Fatalf("stream got %v", e)
	}

	refused := refusedStream(n.URL("/app"), from(evil))
	checkRefused("stream from another origin", refused.Status, refused.Header, refused.Body)
	r = postMessage(t, n.URL("/app"), "from evil", from(evil))
	checkRefused("POST from another origin", r.Status, r.Header, r.Body)
	mustPost(t, n.URL("/app"), "no origin: not a browser") // curl, a backend
	if e := stream.Next(t, wait); e.Data != "no origin: not a browser" {
		t.Fatalf("stream got %v after the refused POST, want the next allowed one", e)
	}

	preflight := func(origin string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, n.URL("/app"), nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type, idempotency-key")
		resp, err := noKeepAliveClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp, string(body)
	}
	resp, _ := preflight(app)
	checkAllowed("preflight", resp.Header)
	if h := resp.Header; resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Methods") != "GET, POST, OPTIONS" ||
		h.Get("Access-Control-Allow-Headers") != "content-type, idempotency-key" || h.Get("Access-Control-Max-Age") != "600" {
		t.Fatalf("preflight: %d %v, want 204 allowing GET, POST, OPTIONS and the headers asked for, for 600 s", resp.StatusCode, h)
	}
	resp, body := preflight(evil)
	checkRefused("preflight from another origin", resp.StatusCode, resp.Header, body)

	own := dialSSE(t, n.URL("/own"), from(fmt.Sprintf("http://127.0.0.1:%d", n.Port)))
	if got := own.Resp.Header.Get("Access-Control-Allow-Origin"); got != fmt.Sprintf("http://127.0.0.1:%d", n.Port) {
		t.Fatalf("stream from the route's own host: Access-Control-Allow-Origin %q", got)
	}
	refused = refusedStream(n.URL("/own"), from(app))
	checkRefused("stream from another origin, on a route without origins", refused.Status, refused.Header, refused.Body)
}

// A POST whose body does not arrive whole within 10 s is answered 408 with
// why, over HTTP/1.1, HTTP/2 and HTTP/3, and counted under code 408;
// nothing of it is published. A client that leaves in the middle of its
// body is counted as before (400).
func TestPostBodyTimeout(t *testing.T) {
	rs := startRedis(t)
	n := tlsInternalNode(t, rs, "")
	roots := internalRoots(t, n)
	url := fmt.Sprintf("https://localhost:%d/ws", n.Port)
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
	t.Cleanup(h2.CloseIdleConnections)
	h3Transport := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	t.Cleanup(func() { _ = h3Transport.Close() })
	h3 := &http.Client{Transport: h3Transport}
	testkit.Eventually(t, wait, func() bool { // the certificate is issued in the background
		r, err := h2.Get(url)
		if err == nil {
			r.Body.Close()
		}
		return err == nil
	}, "no HTTPS")
	watcher, err := tryDialSSE(t, h2, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	dialH1 := func() (*tls.Conn, error) {
		return tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", n.Port), &tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	}

	const reason = "the message did not arrive within 10s; it was not published"
	// Each stalls after the first part of its body; they wait together.
	stalled := func(client *http.Client) (int, string, error) {
		pr, pw := io.Pipe()
		defer pw.Close()
		go func() { _, _ = pw.Write([]byte("first part, then nothing")) }()
		req, _ := http.NewRequest(http.MethodPost, url, pr)
		req.ContentLength = 100
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	type answer struct {
		proto  string
		status int
		body   string
		err    error
	}
	answers := make(chan answer, 3)
	for _, c := range []struct {
		proto  string
		client *http.Client
	}{{"HTTP/2", h2}, {"HTTP/3", h3}} {
		go func() {
			status, body, err := stalled(c.client)
			answers <- answer{c.proto, status, body, err}
		}()
	}
	go func() {
		conn, err := dialH1()
		if err != nil {
			answers <- answer{"HTTP/1.1", 0, "", err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(wait))
		fmt.Fprintf(conn, "POST /ws HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nfirst part, then nothing")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answers <- answer{"HTTP/1.1", 0, "", err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		answers <- answer{"HTTP/1.1", resp.StatusCode, string(b), nil}
	}()
	for range 3 {
		a := <-answers
		if a.err != nil || a.status != http.StatusRequestTimeout || !strings.Contains(a.body, reason) {
			t.Errorf("a body stalled over %s: %d %q %v, want 408 saying %q", a.proto, a.status, a.body, a.err, reason)
		}
	}
	if r := postMessageVia(t, h2, url, "after the stalled ones", nil); r.Status != http.StatusOK {
		t.Fatalf("a whole POST: %d %q", r.Status, r.Body)
	}
	if e := watcher.Next(t, wait); e.Data != "after the stalled ones" {
		t.Fatalf("the stream got %v first: a stalled body was published", e)
	}

	conn, err := dialH1()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /ws HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nleaving")
	_ = conn.Close()
	testkit.Eventually(t, wait, func() bool {
		m := scrapeMetrics(t, n)
		return m[`caddy_redis_ws_http_publishes_total{code="408",handler="chat"}`] == 3 &&
			m[`caddy_redis_ws_http_publishes_total{code="400",handler="chat"}`] == 1
	}, "not counted: the three 408s, and the POST whose client left as 400")
}
