package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestSSEReader(t *testing.T) {
	p1 := newPayload(64, 7, 1)
	stamp(p1, 1, 1000)
	long := strings.Repeat("L", 300) // longer than the reader's buffer
	stream := ": ping\n\n" +
		"id: e1:41\n\n" + // the stream's position: an id and no data
		"id: e1:42\ndata: " + string(p1) + "\n\n" +
		": ping\n" +
		"data: a\ndata: b\ndata:c\n\n" + // joined by \n; "data:c" has no space to drop
		"data: crlf\r\n\r\n" +
		"retry: 100\ndata: " + long + "\n\n" +
		"event: binary\nid: e1:43\ndata: " + base64.StdEncoding.EncodeToString([]byte("\xff\x00bin")) + "\n\n" +
		"event: binary\ndata: !!!\n\n" +
		"event: reset\ndata: {\"channel\":\"chat\"}\n\n" +
		"data: cut"
	rd := newSSEReader(strings.NewReader(stream), 64)
	type want struct {
		id, typ, data       string
		hasID, hasData, bad bool
	}
	for i, w := range []want{
		{id: "e1:41", hasID: true},
		{id: "e1:42", hasID: true, data: string(p1), hasData: true},
		{data: "a\nb\nc", hasData: true},
		{data: "crlf", hasData: true},
		{data: long, hasData: true},
		{typ: "binary", id: "e1:43", hasID: true, data: "\xff\x00bin", hasData: true},
		{typ: "binary", data: "", hasData: true, bad: true},
		{typ: "reset", data: `{"channel":"chat"}`, hasData: true},
	} {
		ev, err := rd.next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		got := want{string(ev.id), string(ev.typ), string(ev.data), ev.hasID, ev.hasData, ev.badB64}
		if w.bad {
			got.data = "" // whatever part decoded
		}
		if got != w {
			t.Fatalf("event %d: %+v, want %+v", i, got, w)
		}
	}
	if _, err := rd.next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("cut event: %v, want unexpected EOF", err)
	}
	if rd.comments != 2 || rd.unknown != 1 {
		t.Errorf("comments %d, unknown %d", rd.comments, rd.unknown)
	}
	if _, err := newSSEReader(strings.NewReader("data: x\n\n"), 64).next(); err != nil {
		t.Error(err)
	}
	rd = newSSEReader(strings.NewReader("data: x\n\n"), 64)
	rd.next()
	if _, err := rd.next(); err != io.EOF {
		t.Errorf("end of stream: %v, want EOF", err)
	}
	if off, ok := idOffset([]byte("ep:ch:12")); !ok || off != 12 {
		t.Errorf("idOffset %d %v", off, ok)
	}
	if _, ok := idOffset([]byte("12")); ok {
		t.Error("idOffset without epoch accepted")
	}
}

// TestSSEReaderAllocs: once its buffers have grown, the reader allocates
// nothing per event, plain or binary.
func TestSSEReaderAllocs(t *testing.T) {
	p := newPayload(64, 7, 1)
	stamp(p, 1, 1000)
	one := "id: e:1\ndata: " + string(p) + "\n\n: ping\n\nevent: binary\ndata: " + base64.StdEncoding.EncodeToString(p) + "\n\n"
	rd := newSSEReader(strings.NewReader(strings.Repeat(one, 3000)), 4096)
	for range 10 {
		rd.next()
	}
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := rd.next(); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%.1f allocations per event", n)
	}
}

func TestHTTPURL(t *testing.T) {
	for in, want := range map[string]string{
		"ws://127.0.0.1:8001/ws":       "http://127.0.0.1:8001/ws",
		"http://127.0.0.1:8001/ws?a=b": "http://127.0.0.1:8001/ws?a=b",
		"wss://127.0.0.1/ws":           "",
		"ftp://127.0.0.1/":             "",
	} {
		got, err := httpURL(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
}

// miniHub speaks the route's two sides as the load tool sees them: a
// WebSocket whose text frames it publishes, and event streams (GET with
// Accept: text/event-stream) that get every message as an event with an
// id, every 7th as "event: binary", an id-only event first and pings.
type miniHub struct {
	mu      sync.Mutex
	off     int64
	streams map[chan []byte]bool
	wsSubs  map[*websocket.Conn]bool
	tcp     atomic.Int64 // TCP connections accepted
}

func newMiniHub(t *testing.T) (*miniHub, *httptest.Server) {
	h := &miniHub{streams: map[chan []byte]bool{}, wsSubs: map[*websocket.Conn]bool{}}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			h.tcp.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return h, srv
}

func (h *miniHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if websocket.IsWebSocketUpgrade(r) {
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				return
			}
			h.publish(b)
		}
	}
	if r.Method != http.MethodGet || !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		http.Error(w, "no", http.StatusBadRequest)
		return
	}
	ch := make(chan []byte, 1<<14)
	h.mu.Lock()
	h.streams[ch] = true
	at := h.off
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.streams, ch)
		h.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "id: e1:%d\n\n", at)
	w.(http.Flusher).Flush()
	ping := time.NewTicker(20 * time.Millisecond)
	defer ping.Stop()
	for {
		select {
		case ev := <-ch:
			w.Write(ev)
		case <-ping.C:
			io.WriteString(w, ": ping\n\n")
		case <-r.Context().Done():
			return
		}
		w.(http.Flusher).Flush()
	}
}

func (h *miniHub) publish(b []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.off++
	var ev []byte
	if h.off%7 == 0 {
		ev = fmt.Appendf(nil, "id: e1:%d\nevent: binary\ndata: %s\n\n", h.off, base64.StdEncoding.EncodeToString(b))
	} else {
		ev = fmt.Appendf(nil, "id: e1:%d\ndata: %s\n\n", h.off, b)
	}
	for ch := range h.streams {
		select {
		case ch <- ev:
		default: // a stream this far behind loses the message: the test sees it
		}
	}
}

// captureStdout runs f and returns what it printed on stdout (the JSON line).
func captureStdout(t *testing.T, f func()) []byte {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	defer func() { os.Stdout = old }()
	f()
	w.Close()
	os.Stdout = old
	return <-done
}

// TestFanoutSSE: a fanout run with event-stream subscribers against the
// mini hub gets every message once, in order, each stream on its own TCP
// connection, and says so in its JSON line.
func TestFanoutSSE(t *testing.T) {
	h, srv := newMiniHub(t)
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	const subs = 30
	c := &config{
		mode: "fanout", transport: "sse", label: "test", urls: []string{wsURL}, subs: subs, pubs: 2, rate: 300,
		duration: time.Second, size: 64, drain: 3 * time.Second, settle: 100 * time.Millisecond,
		connectRate: 1000, handshake: 5 * time.Second, jsonOnly: true,
	}
	var rc int
	out := captureStdout(t, func() { rc = fanoutMode(c) })
	if rc != 0 {
		t.Fatalf("exit %d: %s", rc, out)
	}
	var res fanoutResult
	if err := json.Unmarshal(bytes.TrimSpace(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.Transport != "sse" || res.Label != "test" || res.SubsConnected != subs || res.SSE == nil || res.SSE.Streams != subs {
		t.Fatalf("result: %s", out)
	}
	if res.Sent != 300 || res.Expected != 300*subs || res.Received != res.Expected || !res.Complete ||
		res.Duplicates != 0 || res.Reordered != 0 || res.Malformed != 0 || res.Foreign != 0 {
		t.Errorf("deliveries: %s", out)
	}
	s := res.SSE
	if s.IDOnly != subs || s.WithID != res.Received || s.Binary != 300/7*subs || s.IDBackwards != 0 || s.BadBase64 != 0 || s.Pings == 0 {
		t.Errorf("sse counts %+v", *s)
	}
	if n := h.tcp.Load(); n != subs+2 {
		t.Errorf("%d TCP connections for %d streams and 2 publishers", n, subs)
	}
	if res.LatencyP99Ms <= 0 || res.DeliveriesPerS <= 0 {
		t.Errorf("latency/throughput: %s", out)
	}
}

// TestSSEDialRefused: a server that does not answer with an event stream
// is a connect error naming the status.
func TestSSEDialRefused(t *testing.T) {
	_, srv := newMiniHub(t)
	c := &config{connectRate: 100, handshake: 2 * time.Second}
	nf := httptest.NewServer(http.NotFoundHandler())
	defer nf.Close()
	d := dialAllSSE(c, []string{nf.URL + "/x", srv.URL + "/ws"}, 4096, time.Now().Add(5*time.Second))
	if d.failed != 1 || d.streams[0] != nil || d.streams[1] == nil {
		t.Fatalf("failed %d, streams %v, errs %v", d.failed, d.streams, d.errs)
	}
	for k := range d.errs {
		if !strings.Contains(k, "HTTP 404") {
			t.Errorf("error %q", k)
		}
	}
	closeStreams(d.streams)
	var err error
	for i := 0; i < 100 && err == nil; i++ { // what was buffered, then the end
		_, err = d.streams[1].rd.next()
	}
	if err == nil {
		t.Error("a closed stream still reads")
	}
	if k := closeKey(sseEndErr(io.EOF)); k != "eof" {
		t.Errorf("closeKey %s", k)
	}
}
