package e2e

// An HTTP/1.1 event stream leaves net/http after its headers (streamconn.go):
// one goroutine per idle stream, kept across a reload that keeps its route,
// noticed when the client leaves, ended cleanly (the last chunk) when the
// node ends it.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

func TestEventStreamLeavesHandler(t *testing.T) {
	rs := startRedis(t)
	site := `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		reload_close_delay 0
	}
	respond /health 200`
	n := startNode(t, "node", siteCaddyfile("", site), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
	streams := func() float64 { return scrapeMetrics(t, n)[`caddy_redis_ws_event_streams{handler="chat"}`] }

	s := dialSSE(t, n.URL("/ws"), nil)
	if te := s.Resp.TransferEncoding; len(te) != 1 || te[0] != "chunked" {
		t.Fatalf("Transfer-Encoding %v, want chunked", te)
	}
	testkit.Eventually(t, wait, func() bool { return streams() == 1 }, "stream counted")

	// Its handler goroutine and net/http's background reader are gone: a
	// stream is one goroutine (which waits for the client to leave).
	const more = 100
	before := n.Goroutines(t)
	extra := make([]*sseClient, more)
	for i := range extra {
		extra[i] = dialSSE(t, n.URL("/ws"), nil)
	}
	testkit.Eventually(t, wait, func() bool { return streams() == 1+more }, "streams counted")
	per := float64(n.Goroutines(t)-before) / more
	t.Logf("%.2f goroutines per idle stream", per)
	if per > 1.2 {
		t.Fatalf("%.2f goroutines per idle stream, want 1", per)
	}
	for _, e := range extra {
		e.Close()
	}

	// A reload that keeps the route keeps the stream.
	n.Reload(t, siteCaddyfile("", site+"\n\trespond /other 204"))
	mustPost(t, n.URL("/ws"), "after the reload")
	if e := s.Next(t, wait); e.Data != "after the reload" {
		t.Fatalf("event %v after a reload that kept the route", e)
	}

	// The client leaves: the node notices without a write.
	s.Close()
	testkit.Eventually(t, wait, func() bool { return streams() == 0 }, "the node still counts a stream the client closed")

	// The node ends a stream: a reload that changes its route. The response
	// ends with its last chunk, not cut short.
	s = dialSSE(t, n.URL("/ws"), nil)
	testkit.Eventually(t, wait, func() bool { return streams() == 1 }, "second stream counted")
	n.Reload(t, siteCaddyfile("", strings.Replace(site, "reload_close_delay 0", "reload_close_delay 0\n\t\tmax_connections 100", 1)))
	s.WaitEnded(t, wait)
	if err := s.EndErr(); err != io.EOF {
		t.Fatalf("the stream ended with %v, want io.EOF (a complete chunked response)", err)
	}
}

// A client sends nothing on a stream: bytes after its request, pipelined
// with it or sent later, end the stream, and the node lets it go.
func TestEventStreamClientSendsBytes(t *testing.T) {
	rs := startRedis(t)
	n := chatNode(t, rs.Port, "")
	request := "GET /ws HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
	for name, writes := range map[string][]string{
		"pipelined":  {request + request},
		"afterwards": {request, "more bytes"},
		"a byte":     {request, "\n"},
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", n.Port))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			r := bufio.NewReader(conn)
			for i, w := range writes {
				if _, err := conn.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
				if i == 0 { // the stream's headers
					resp, err := http.ReadResponse(r, nil)
					if err != nil || resp.StatusCode != http.StatusOK {
						t.Fatalf("answer %v, %v", resp, err)
					}
				}
			}
			// The end: EOF, or a reset when the node closed with the client's
			// bytes unread.
			_ = conn.SetReadDeadline(time.Now().Add(wait))
			if _, err := io.Copy(io.Discard, r); errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the node did not end the stream: %v", err)
			}
			testkit.Eventually(t, wait, func() bool {
				return scrapeMetrics(t, n)[`caddy_redis_ws_event_streams{handler="chat"}`] == 0
			}, "the node still counts the stream")
		})
	}
}
