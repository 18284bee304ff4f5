package e2e

// Plain HTTP on a redis_ws route, through Caddy and a real Redis: POST
// publishes to every WebSocket and event stream of every node, with the
// answer once Redis took it, every refusal with its status and reason,
// idempotent retries; event streams get what WebSocket clients and
// redis-cli publish, resume with Last-Event-ID, rewind, reset.

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/gorilla/websocket"
)

// aliceHash is bcrypt("secret") at cost 4, for basic_auth.
const aliceHash = "$2a$04$3iWa5lJXpbuBCeQgAESL/.rfqNWsm4Ip7SpTdlh.1t3PN64s2epqa"

// httpNodes starts n nodes: /ws keeps the history of chat, /plain has none,
// /listen does not publish, /hdr names its channel from a header, /inbox
// is behind basic_auth and names its channel after the user, /multi has two
// channels with history.
func httpNodes(t *testing.T, n int, rs *redisServer) []*caddyNode {
	t.Helper()
	return startNodes(t, n, siteCaddyfile("", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 100 1h
		max_message_size 1KiB
	}
	redis_ws /plain plain {
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
	redis_ws /listen chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		publish off
	}
	redis_ws /hdr {
		subscribe hdr:{http.request.header.X-Room}
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
	route /inbox {
		basic_auth {
			alice `+aliceHash+`
		}
		redis_ws {
			subscribe user:{http.auth.user.id}
			redis redis://127.0.0.1:{$REDIS_PORT}
		}
	}
	redis_ws /multi {
		subscribe a b
		publish a
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 10
	}
	respond /health 200`), rs)
}

func TestHTTPPublish(t *testing.T) {
	rs := startRedis(t)
	ns := httpNodes(t, 2, rs)
	raw := []*wsClient{dialWS(t, ns[0].WSURL("/ws"), nil), dialWS(t, ns[1].WSURL("/ws"), nil)}
	env := dialEnvelope(t, ns[1].WSURL("/ws"))
	expectSubscribed(t, env, "chat")
	streams := []*sseClient{dialSSE(t, ns[0].URL("/ws"), nil), dialSSE(t, ns[1].URL("/ws"), nil)}
	var epoch string // the channel's, made by the first message

	t.Run("a POST reaches every WebSocket and stream of every node", func(t *testing.T) {
		a := mustPost(t, ns[0].URL("/ws"), "hello")
		epoch = historyEpoch(t, rs.Client(t), "chat")
		if a != (postResult{Channel: "chat", Offset: 1, Epoch: epoch}) {
			t.Fatalf("answer %+v, want chat at offset 1 of %s", a, epoch)
		}
		for _, c := range raw {
			if m := c.Next(t, wait); m.Type != websocket.TextMessage || string(m.Data) != "hello" {
				t.Fatalf("WebSocket got %v", m)
			}
		}
		expectOffsets(t, env, "chat", epoch, 1, 1, func(int64) string { return "hello" })
		for _, s := range streams {
			if e := s.Next(t, wait); e != (sseEvent{"message", "hello", epoch + ":1"}) {
				t.Fatalf("stream got %v", e)
			}
		}
	})
	t.Run("the body is published byte for byte", func(t *testing.T) {
		binary := "\xff\x00\x01 not text"
		if a := mustPost(t, ns[1].URL("/ws"), binary); a.Offset != 2 {
			t.Fatalf("answer %+v, want offset 2", a)
		}
		for _, c := range raw {
			if m := c.Next(t, wait); m.Type != websocket.BinaryMessage || string(m.Data) != binary {
				t.Fatalf("WebSocket got %v, want the binary body", m)
			}
		}
		for _, s := range streams {
			if e := s.Next(t, wait); e.Type != "binary" || e.Data != base64.StdEncoding.EncodeToString([]byte(binary)) || e.ID != epoch+":2" {
				t.Fatalf("stream got %v, want an event binary with the body in base64", e)
			}
		}
		multi := "line one\nline two\n\nlast\n"
		carriage := "a\r\nb"
		mustPost(t, ns[0].URL("/ws"), multi)
		mustPost(t, ns[0].URL("/ws"), carriage)
		for _, c := range raw {
			if got := c.Collect(t, 2, wait); string(got[0].Data) != multi || string(got[1].Data) != carriage {
				t.Fatalf("WebSocket got %v", got)
			}
		}
		for _, s := range streams {
			got := s.Collect(t, 2, wait)
			if got[0].Data != multi || got[0].Type != "message" {
				t.Fatalf("stream got %v, want the lines of %q", got[0], multi)
			}
			if got[1].Type != "binary" || got[1].Data != base64.StdEncoding.EncodeToString([]byte(carriage)) {
				t.Fatalf("stream got %v: a carriage return must come as binary, EventSource would read it as a line end", got[1])
			}
		}
		expectOffsets(t, env, "chat", epoch, 2, 4, nil)
	})
	t.Run("streams get what WebSocket clients and redis-cli send", func(t *testing.T) {
		raw[0].SendText(t, "from a socket")
		for _, s := range streams {
			if e := s.Next(t, wait); e != (sseEvent{"message", "from a socket", epoch + ":5"}) {
				t.Fatalf("stream got %v", e)
			}
		}
		publish(t, rs.Client(t), "chat", "from redis-cli")
		for _, s := range streams {
			if e := s.Next(t, wait); e.Data != "from redis-cli" {
				t.Fatalf("stream got %v", e)
			}
		}
		for _, c := range raw {
			c.Collect(t, 2, wait)
		}
	})
	t.Run("a route without history answers the channel alone", func(t *testing.T) {
		plain := dialSSE(t, ns[1].URL("/plain"), nil)
		r := postMessage(t, ns[0].URL("/plain"), "p", nil)
		if r.Status != http.StatusOK || r.Body != `{"channel":"plain"}`+"\n" || r.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("POST /plain: %d %q %v", r.Status, r.Body, r.Header)
		}
		if e := plain.Next(t, wait); e != (sseEvent{"message", "p", ""}) {
			t.Fatalf("stream of /plain got %v, want no id", e)
		}
	})
	t.Run("placeholders are the request's: basic_auth names the channel", func(t *testing.T) {
		auth := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("alice:secret"))}}
		inbox := dialSSE(t, ns[1].URL("/inbox"), auth)
		if r := postMessage(t, ns[0].URL("/inbox"), "x", nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("POST without credentials: %d %q", r.Status, r.Body)
		}
		if r := postMessage(t, ns[0].URL("/inbox"), "for alice", auth); r.Status != http.StatusOK || r.Answer.Channel != "user:alice" {
			t.Fatalf("POST as alice: %d %q", r.Status, r.Body)
		}
		if e := inbox.Next(t, wait); e.Data != "for alice" {
			t.Fatalf("alice's stream got %v", e)
		}
	})
	for _, tc := range []struct {
		name, method, path, body string
		header                   http.Header
		status                   int
		reason, allow            string
	}{
		{"a body over max_message_size", "POST", "/ws", strings.Repeat("x", 1025), nil, 413, "larger than max_message_size (1024 bytes)", ""},
		{"a route with publish off", "POST", "/listen", "x", nil, 405, "does not publish (publish off)", "GET, OPTIONS"},
		{"another method", "PUT", "/ws", "x", nil, 405, "method PUT is not allowed here", "GET, POST, OPTIONS"},
		{"a channel placeholder that does not resolve", "POST", "/hdr", "x", nil, 400, "empty", ""},
		{"an Idempotency-Key without history", "POST", "/plain", "x", http.Header{"Idempotency-Key": {"k"}}, 400, "Idempotency-Key needs the route's history", ""},
		{"an Idempotency-Key with a space", "POST", "/ws", "x", http.Header{"Idempotency-Key": {"a b"}}, 400, "visible ASCII", ""},
		{"a GET that is neither", "GET", "/ws", "", nil, 400, "connect with a WebSocket client, or with an EventSource", ""},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, ns[0].URL(tc.path), strings.NewReader(tc.body))
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := noKeepAliveClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.reason) || resp.Header.Get("Allow") != tc.allow {
				t.Fatalf("%s %s: %d %q Allow %q; want %d with %q, Allow %q", tc.method, tc.path, resp.StatusCode, body, resp.Header.Get("Allow"), tc.status, tc.reason, tc.allow)
			}
		})
	}
	t.Run("nothing refused was published", func(t *testing.T) {
		mustPost(t, ns[0].URL("/ws"), "after the refusals")
		if m := raw[0].Next(t, wait); string(m.Data) != "after the refusals" {
			t.Fatalf("WebSocket got %v before the next message", m)
		}
	})
}

func TestHTTPPublishIdempotent(t *testing.T) {
	rs := startRedis(t)
	ns := httpNodes(t, 2, rs)
	stream := dialSSE(t, ns[1].URL("/ws"), nil)
	key := http.Header{"Idempotency-Key": {"order-42"}}
	first := postMessage(t, ns[0].URL("/ws"), "once", key)
	again := postMessage(t, ns[1].URL("/ws"), "once", key) // a retry, through another node
	if first.Status != 200 || again.Status != 200 || first.Answer.Offset != 1 || again.Answer.Offset != 1 ||
		first.Answer.Epoch != again.Answer.Epoch || first.Answer.Duplicate || !again.Answer.Duplicate {
		t.Fatalf("first %d %q, retry %d %q: want both offset 1, the retry marked duplicate", first.Status, first.Body, again.Status, again.Body)
	}
	other := postMessage(t, ns[0].URL("/ws"), "twice", http.Header{"Idempotency-Key": {"order-43"}})
	if other.Answer.Offset != 2 || other.Answer.Duplicate {
		t.Fatalf("another key: %q, want offset 2", other.Body)
	}
	got := stream.Collect(t, 2, wait)
	if got[0].Data != "once" || got[1].Data != "twice" {
		t.Fatalf("stream got %v", got)
	}
	stream.ExpectNothing(t, 300*time.Millisecond)
	rdb := rs.Client(t)
	if n := rdb.XLen(context.Background(), bus.HistoryKeys("chat")[1]).Val(); n != 2 {
		t.Fatalf("the stream holds %d entries, want 2", n)
	}
	kept := rdb.Keys(context.Background(), "redis_ws:{chat}:i:*").Val()
	if len(kept) != 2 {
		t.Fatalf("idempotency keys %q, want one for each of the two keys used", kept)
	}
	ttl := rdb.PTTL(context.Background(), kept[0]).Val()
	if ttl <= 4*time.Minute || ttl > 5*time.Minute {
		t.Fatalf("the key is kept for %s, want 5 minutes", ttl)
	}
}

// While Redis is down a POST is answered 503 within a few seconds, and
// what it carried is not published when Redis is back.
func TestHTTPPublishRedisDown(t *testing.T) {
	rs := startRedis(t)
	ns := httpNodes(t, 1, rs)
	c := dialWS(t, ns[0].WSURL("/ws"), nil)
	mustPost(t, ns[0].URL("/ws"), "before")
	c.Next(t, wait)
	rs.Kill(t)
	start := time.Now()
	r := postMessage(t, ns[0].URL("/ws"), "while down", nil)
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || !strings.Contains(r.Body, "not published") {
		t.Fatalf("POST with Redis down: %d %q Retry-After %q", r.Status, r.Body, r.Header.Get("Retry-After"))
	}
	t.Logf("answered 503 after %s", time.Since(start).Round(time.Millisecond))
	rs.Restart(t)
	testkit.Eventually(t, wait, func() bool {
		r := postMessage(t, ns[0].URL("/ws"), "after", nil)
		return r.Status == http.StatusOK
	}, "POST did not succeed after Redis came back")
	if m := c.Next(t, wait); string(m.Data) != "after" {
		t.Fatalf("first message after the outage: %v, want \"after\" (the refused one must not be published)", m)
	}
}

// A POST answered 503 while Redis is down is counted once, under its 503:
// when Redis comes back, after the outbox stopped keeping frames that old,
// the outbox drops its frame without counting it again as expired.
func TestHTTPPublishRedisDownCountedOnce(t *testing.T) {
	rs := startRedis(t)
	n := chatNode(t, rs.Port, "")
	c := dialWS(t, n.WSURL("/ws"), nil)
	rs.Kill(t)
	posted := time.Now()
	if r := postMessage(t, n.URL("/ws"), "while down", nil); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("POST with Redis down: %d %q", r.Status, r.Body)
	}
	// Its frame, still queued, must be older than the outbox keeps frames
	// when Redis is back.
	time.Sleep(time.Until(posted.Add(bus.OutboxMaxAge + time.Second)))
	rs.Restart(t)
	testkit.Eventually(t, wait, func() bool { return postMessage(t, n.URL("/ws"), "after", nil).Status == http.StatusOK }, "POST did not succeed after Redis came back")
	if m := c.Next(t, wait); string(m.Data) != "after" {
		t.Fatalf("first message after the outage: %v, want \"after\"", m)
	}
	m := scrapeMetrics(t, n)
	if got := m[`caddy_redis_ws_publish_dropped_total{reason="expired"}`]; got != 0 {
		t.Fatalf("publish_dropped_total{reason=expired} = %v for POSTs answered 503, want 0 (%v of them)", got, m[`caddy_redis_ws_http_publishes_total{code="503",handler="chat"}`])
	}
	if countLines(n.Logs(), "client frames dropped after waiting for redis") != 0 {
		t.Fatal("a POST answered 503 was logged as dropped after waiting")
	}
}
