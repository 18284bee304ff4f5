package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

// max_connections counts event streams and WebSockets together: beyond it,
// a stream gets 503 with Retry-After, and there is room again once one
// leaves.
func TestEventStreamMaxConnections(t *testing.T) {
	rs := startRedis(t)
	n := chatNode(t, rs.Port, "max_connections 2")
	ws := dialWS(t, n.WSURL("/ws"), nil)
	stream := dialSSE(t, n.URL("/ws"), nil)
	_, err := tryDialSSE(t, sseHTTP, n.URL("/ws"), nil)
	var refused *sseRefused
	if !errors.As(err, &refused) || refused.Status != http.StatusServiceUnavailable || refused.Header.Get("Retry-After") == "" {
		t.Fatalf("third connection, a stream: %v, want 503 with Retry-After", err)
	}
	if _, resp, err := tryDialWS(t, n.WSURL("/ws"), nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third connection, a WebSocket: %v %v, want 503", resp, err)
	}
	ws.SendText(t, "still fine")
	if e := stream.Next(t, wait); e.Data != "still fine" {
		t.Fatalf("stream got %v", e)
	}
	stream.Close()
	testkit.Eventually(t, wait, func() bool {
		s, err := tryDialSSE(t, sseHTTP, n.URL("/ws"), nil)
		if err == nil {
			s.Close()
		}
		return err == nil
	}, "no room for a stream after one left")
}

// A stream that is not read falls send_queue behind and is closed alone:
// the streams that read get every message, and the node's goroutines go
// back to what they were.
func TestEventStreamSlowReader(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := chatNode(t, rs.Port, "send_queue 1MiB")
	base := n.BaseGoroutines(t)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	slow, err := openStream(ctx, sseHTTP, n.URL("/ws"), nil) // not read until the end
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Body.Close()
	fast := []*sseClient{dialSSE(t, n.URL("/ws"), nil), dialSSE(t, n.URL("/ws"), nil)}
	testkit.Eventually(t, wait, func() bool {
		return scrapeMetrics(t, n)[`caddy_redis_ws_event_streams{handler="chat"}`] == 3
	}, "the three streams are not all counted")

	// As in TestSlowClient: the publisher keeps within a window of what the
	// fast streams have read, so only one that does not read falls behind.
	const count, size, window = 600, 64 << 10, 8
	payload := strings.Repeat("s", size-8)
	for i := range count {
		publish(t, rdb, "chat", fmt.Sprintf("%07d:%s", i, payload))
		for _, c := range fast {
			testkit.Eventually(t, wait, func() bool { return c.Received() > i-window }, "fast stream stuck at %v", atFailure(func() any { return c.Received() }))
		}
	}
	for _, c := range fast {
		for i, e := range c.Collect(t, count, wait) {
			if !strings.HasPrefix(e.Data, fmt.Sprintf("%07d:", i)) {
				t.Fatalf("fast stream: event %d is %.10q", i, e.Data)
			}
		}
	}
	// The slow stream, read now, ends before it has them all.
	time.AfterFunc(wait, cancel)
	lines := bufio.NewReader(slow.Body)
	got := 0
	for {
		line, err := lines.ReadString('\n')
		if err != nil {
			break
		}
		if strings.HasPrefix(line, "data:") {
			got++
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("the slow stream was still open %s after the others got everything (%d events read)", wait, got)
	}
	if got >= count {
		t.Fatalf("slow stream got all %d messages; want it closed", count)
	}
	t.Logf("slow stream got %d of %d messages before it was closed", got, count)

	for _, c := range fast {
		c.Close()
	}
	n.GoroutinesBackTo(t, base)
}

// ping_interval sends a comment line on an idle stream, which keeps it
// open.
func TestEventStreamPing(t *testing.T) {
	rs := startRedis(t)
	n := chatNode(t, rs.Port, "ping_interval 200ms")
	s := dialSSE(t, n.URL("/ws"), nil)
	testkit.Eventually(t, wait, func() bool { return s.Comments() >= 3 }, "%v comments on an idle stream, want 3", atFailure(func() any { return s.Comments() }))
	if s.Ended() {
		t.Fatal("the idle stream ended")
	}
	mustPost(t, n.URL("/ws"), "after the pings")
	if e := s.Next(t, wait); e.Data != "after the pings" {
		t.Fatalf("stream got %v", e)
	}
}

// An idle stream over HTTP/2 lives through its pings when ping_interval is
// longer than the 10 s write timeout: a write deadline left set after a ping
// made Go's HTTP/2 server reset the stream when it passed.
func TestEventStreamHTTP2IdlePings(t *testing.T) {
	rs := startRedis(t)
	n := tlsInternalNode(t, rs, "ping_interval 12s")
	roots := internalRoots(t, n)
	h2 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	t.Cleanup(h2.CloseIdleConnections)
	url := fmt.Sprintf("https://localhost:%d/ws", n.Port)
	var s *sseClient
	var err error
	testkit.Eventually(t, wait, func() bool { // the certificate is issued in the background
		s, err = tryDialSSE(t, &http.Client{Transport: h2}, url, nil)
		return err == nil
	}, "no event stream over HTTP/2: %v", atFailure(func() any { return err }))
	if s.Resp.ProtoMajor != 2 {
		t.Fatalf("stream over %s, want HTTP/2", s.Resp.Proto)
	}
	testkit.Eventually(t, time.Minute, func() bool { return s.Comments() >= 2 || s.Ended() },
		"%d pings on an idle HTTP/2 stream, want 2", atFailure(func() any { return s.Comments() }))
	if s.Ended() {
		t.Fatalf("the idle HTTP/2 stream ended after %d pings: %v", s.Comments(), s.err)
	}
	if r := postMessageVia(t, &http.Client{Transport: h2}, url, "after the pings", nil); r.Status != http.StatusOK {
		t.Fatalf("POST: %d %q", r.Status, r.Body)
	}
	if e := s.Next(t, wait); e.Data != "after the pings" {
		t.Fatalf("stream got %v", e)
	}
}
