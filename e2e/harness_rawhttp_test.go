package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawReply is the answer to a rawRequest; Body is not read for a 101 or an
// event stream.
type rawReply struct {
	Status int
	Header http.Header
	Body   string
}

// rawRequest sends one HTTP/1.1 request to the node on a connection of its
// own, with the request target exactly as written (not parsed, not
// cleaned: curl --path-as-is), and reads the answer. header may set Host.
func rawRequest(t testing.TB, n *caddyNode, method, target string, header http.Header, body string) rawReply {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.Port), wait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	var req strings.Builder
	host := header.Get("Host")
	if host == "" {
		host = fmt.Sprintf("127.0.0.1:%d", n.Port)
	}
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target, host)
	for k, vs := range header {
		for _, v := range vs {
			if k != "Host" {
				fmt.Fprintf(&req, "%s: %s\r\n", k, v)
			}
		}
	}
	if body != "" || method == http.MethodPost {
		fmt.Fprintf(&req, "Content-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n" + body)
	if _, err := io.WriteString(conn, req.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	// The body is left to the connection's close: closing it would read an
	// event stream to its end.
	reply := rawReply{Status: resp.StatusCode, Header: resp.Header}
	if resp.StatusCode != http.StatusSwitchingProtocols && resp.Header.Get("Content-Type") != "text/event-stream" {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if err != nil {
			t.Fatalf("%s %s: reading the body: %v", method, target, err)
		}
		reply.Body = string(b)
	}
	return reply
}

// upgradeHeader is what a WebSocket client's handshake sends, with extra
// headers (name, value, ...).
func upgradeHeader(extra ...string) http.Header {
	h := http.Header{
		"Upgrade":               {"websocket"},
		"Connection":            {"Upgrade"},
		"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
		"Sec-Websocket-Version": {"13"},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		h.Add(extra[i], extra[i+1])
	}
	return h
}
