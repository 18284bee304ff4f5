package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseSources(t *testing.T) {
	got, err := parseSources("127.0.0.2, 127.0.0.3,,::1")
	if err != nil || fmt.Sprint(got) != "[127.0.0.2 127.0.0.3 ::1]" {
		t.Fatalf("got %v, %v", got, err)
	}
	if got, err := parseSources(""); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v, %v", got, err)
	}
	for _, bad := range []string{"10.0.0.1", "127.0.0.2,192.168.1.1", "localhost", "127.0.0.2:80"} {
		if _, err := parseSources(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCheckTransport(t *testing.T) {
	ws, wss := []string{"ws://127.0.0.1:1/ws"}, []string{"wss://127.0.0.1:1/ws"}
	cases := []struct {
		mode, transport string
		slow            int
		urls            []string
		ok              bool
	}{
		{"fanout", "ws", 0, wss, true},
		{"fanout", "sse", 0, ws, true},
		{"fanout", "sse", 1, ws, false},
		{"fanout", "h2", 0, ws, false},
		{"conns", "sse", 0, ws, true},
		{"conns", "h2", 0, ws, true},
		{"conns", "h2", 0, wss, false},
		{"post", "sse", 0, ws, false},
		{"conns", "h3", 0, ws, false},
	}
	for _, tc := range cases {
		c := &config{mode: tc.mode, transport: tc.transport, slow: tc.slow, urls: tc.urls}
		if err := c.checkTransport(); (err == nil) != tc.ok {
			t.Errorf("%s -transport %s -slow %d %v: %v, want ok %v", tc.mode, tc.transport, tc.slow, tc.urls, err, tc.ok)
		}
	}
}

// dialH2 opens a stream over h2c from the source address asked, and the
// idle readers take the latency of a stamped event.
func TestDialH2FromSource(t *testing.T) {
	remote := make(chan string, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remote <- fmt.Sprintf("%s %s", r.Proto, r.RemoteAddr)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, ": ping\n\ndata: %d\n\n", time.Now().UnixNano())
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	defer srv.Close()

	d := newSourceDialer([]netip.Addr{netip.MustParseAddr("127.0.0.2")})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := dialH2(ctx, d, srv.URL+"/ws", "", 1024)
	if err != nil {
		t.Fatal(err)
	}
	if got := <-remote; !strings.HasPrefix(got, "HTTP/2.0 127.0.0.2:") {
		t.Fatalf("server saw %q, want HTTP/2.0 from 127.0.0.2", got)
	}
	idle := &idleReaders{codes: map[string]int{}}
	idle.watchStream(s)
	deadline := time.Now().Add(5 * time.Second)
	for idle.seen.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	idle.stopping.Store(true)
	s.close()
	if err := awaitReaders(&idle.wg); err != nil {
		t.Fatal(err)
	}
	if idle.seen.Load() != 1 || idle.latency.n != 1 || idle.disconnects != 0 || idle.lastAt.Load() == 0 {
		t.Fatalf("seen %d, stamped %d, disconnects %d; want 1, 1, 0", idle.seen.Load(), idle.latency.n, idle.disconnects)
	}
}

func TestWriteReady(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ready")
	if err := writeReady(path, 18000); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "18000\n" {
		t.Fatalf("%q, %v", b, err)
	}
	idle := &idleReaders{}
	for _, p := range []string{"hello", "", "-5", fmt.Sprint(time.Now().Add(time.Hour).UnixNano())} {
		idle.message([]byte(p))
	}
	if idle.seen.Load() != 4 || idle.latency.n != 0 {
		t.Fatalf("seen %d, stamped %d; want 4 messages, none stamped", idle.seen.Load(), idle.latency.n)
	}
}
