package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
)

// dialH2 opens an event stream over HTTP/2 without TLS (h2c with prior
// knowledge: the node needs `servers { protocols h1 h2c }`), on a TCP
// connection of its own as each browser holds its own; it returns once the
// server answered 200 with text/event-stream, within ctx. Closing the
// stream closes that connection.
func dialH2(ctx context.Context, dialer *sourceDialer, rawURL, origin string, bufSize int) (*sseStream, error) {
	var mu sync.Mutex
	var conn net.Conn
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{
		Protocols: &protos,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			mu.Lock()
			conn = c
			mu.Unlock()
			return c, err
		},
	}
	// The request lives as long as the stream; ctx bounds its answer only.
	reqCtx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	fail := func(err error) (*sseStream, error) {
		cancel()
		tr.CloseIdleConnections()
		mu.Lock()
		defer mu.Unlock()
		if conn != nil {
			conn.Close()
		}
		return nil, err
	}
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, rawURL, nil)
	if err != nil {
		return fail(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("User-Agent", "redisws-bench")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return fail(err)
	}
	if !stop() {
		resp.Body.Close()
		return fail(ctx.Err())
	}
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		resp.Body.Close()
		return fail(fmt.Errorf("event stream refused (HTTP %d, %s)", resp.StatusCode, resp.Proto))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		return fail(fmt.Errorf("event stream answered with Content-Type %q (HTTP 200)", ct))
	}
	mu.Lock()
	defer mu.Unlock()
	return &sseStream{conn: conn, body: resp.Body, rd: newSSEReader(resp.Body, bufSize)}, nil
}
