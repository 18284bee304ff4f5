package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPostStats(t *testing.T) {
	a, b := &postStats{}, &postStats{}
	ok := func(off int) []byte {
		return fmt.Appendf(nil, `{"channel":"chat","offset":%d,"epoch":"e1"}`+"\n", off)
	}
	for _, off := range []int{1, 2, 3, 5} {
		a.add(200, 2*time.Millisecond, ok(off), nil)
	}
	b.add(200, 4*time.Millisecond, ok(3), nil) // a duplicate offset
	b.add(200, 4*time.Millisecond, []byte(`{"channel":"chat","offset":6,"epoch":"e2"}`), nil)
	b.add(503, time.Millisecond, []byte("redis_ws: redis is unreachable"), nil)
	b.add(503, time.Millisecond, nil, nil)
	a.add(413, time.Millisecond, nil, nil)
	a.add(0, time.Second, nil, errors.New("connection refused"))
	a.add(200, time.Millisecond, []byte(`not json`), nil)
	c := &postStats{}
	c.add(200, time.Millisecond, []byte(`{"channel":"other"}`), nil) // no history: no offset

	res := &postResult{}
	res.merge([]*postStats{a, b, c})
	if res.Requests != 12 || res.OK != 8 || res.Non200 != 3 || res.Errors != 1 || res.BadBodies != 1 || res.WithOffset != 6 {
		t.Errorf("counts %+v", res)
	}
	if fmt.Sprint(res.Statuses) != "map[413:1 503:2]" || res.ErrorMsg["connection refused"] != 1 {
		t.Errorf("statuses %v, errors %v", res.Statuses, res.ErrorMsg)
	}
	// offsets 1 2 3 3 5 6: one duplicate, 4 missing
	if res.OffsetMin != 1 || res.OffsetMax != 6 || res.OffsetDuplicates != 1 || res.OffsetGaps != 1 {
		t.Errorf("offsets %d..%d dup %d gaps %d", res.OffsetMin, res.OffsetMax, res.OffsetDuplicates, res.OffsetGaps)
	}
	if fmt.Sprint(res.Epochs) != "[e1 e2]" || fmt.Sprint(res.Channels) != "[chat other]" {
		t.Errorf("epochs %v channels %v", res.Epochs, res.Channels)
	}
	// latencies of the 200s only (1, 2 and 4 ms): p50 2 ms, max 4 ms
	if res.LatencyMaxMs < 3.9 || res.LatencyMaxMs > 4.1 || res.LatencyP50Ms < 1.9 || res.LatencyP50Ms > 2.1 {
		t.Errorf("latency p50 %.3f max %.3f", res.LatencyP50Ms, res.LatencyMaxMs)
	}

	if v, ok := jsonIntField([]byte(`{"offset":123,"x":1}`), `"offset":`); !ok || v != 123 {
		t.Errorf("jsonIntField %d %v", v, ok)
	}
	if _, ok := jsonIntField([]byte(`{"offset":"1"}`), `"offset":`); ok {
		t.Error("string offset accepted")
	}
	if _, ok := jsonStringField([]byte(`{"channel":"a\"b"}`), `"channel":"`); ok {
		t.Error("escaped string accepted")
	}
}

// postServer answers like the route: 200 {"channel","offset","epoch"} with
// the next offset, except every 10th request, 503 with Retry-After.
type postServer struct {
	mu     sync.Mutex
	n, off int64
	bodies map[string]bool
	dup    int
	tcp    atomic.Int64
}

func (p *postServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	body, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.n++
	n := p.n
	if n%10 == 0 {
		p.mu.Unlock()
		w.Header().Set("Retry-After", "10")
		http.Error(w, "redis_ws: redis is unreachable", http.StatusServiceUnavailable)
		return
	}
	p.off++
	off := p.off
	if p.bodies[string(body)] {
		p.dup++
	}
	p.bodies[string(body)] = true
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"channel":"chat","offset":%d,"epoch":"e1"}`+"\n", off)
}

func TestPostMode(t *testing.T) {
	ps := &postServer{bodies: map[string]bool{}}
	srv := httptest.NewUnstartedServer(ps)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			ps.tcp.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	run := func(c *config) postResult {
		t.Helper()
		var rc int
		out := captureStdout(t, func() { rc = postMode(c) })
		var res postResult
		if err := json.Unmarshal(bytes.TrimSpace(out), &res); err != nil || rc != 0 {
			t.Fatalf("exit %d, %v: %s", rc, err, out)
		}
		return res
	}
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws" // asked over http://
	res := run(&config{urls: []string{wsURL}, pubs: 4, duration: 300 * time.Millisecond, size: 64, jsonOnly: true, label: "t"})
	ps.mu.Lock()
	n, off, dup := ps.n, ps.off, ps.dup
	ps.mu.Unlock()
	if res.Requests != uint64(n) || res.OK != uint64(off) || res.Non200 != uint64(n-off) || res.Statuses["503"] != uint64(n-off) || res.Errors != 0 {
		t.Errorf("server saw %d requests, %d published; result %+v", n, off, res)
	}
	if res.OffsetMin != 1 || res.OffsetMax != off || res.OffsetDuplicates != 0 || res.OffsetGaps != 0 || fmt.Sprint(res.Epochs) != "[e1]" {
		t.Errorf("offsets %+v", res)
	}
	if dup != 0 {
		t.Errorf("%d bodies posted twice (stamps should differ)", dup)
	}
	if res.Connections != 4 || ps.tcp.Load() != 4 {
		t.Errorf("%d dials, %d TCP connections for 4 clients", res.Connections, ps.tcp.Load())
	}
	if res.OKPerS <= 0 || res.LatencyP99Ms <= 0 || res.Label != "t" || res.Mode != "post" {
		t.Errorf("result %+v", res)
	}

	// paced, and bounded by -posts
	res = run(&config{urls: []string{srv.URL}, pubs: 2, duration: 2 * time.Second, rate: 100, paced: true, size: 10, maxPosts: 30, jsonOnly: true})
	if res.Requests != 30 || res.RateAsked != 100 {
		t.Errorf("-posts 30: %d requests", res.Requests)
	}
	if res.WindowS < 0.25 || res.WindowS > 0.6 { // 30 at 100/s ≈ 0.3 s
		t.Errorf("paced window %.3fs", res.WindowS)
	}

	// nothing listening: errors, exit 1, bounded by -duration
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	var rc int
	out := captureStdout(t, func() {
		rc = postMode(&config{urls: []string{deadURL}, pubs: 2, duration: 200 * time.Millisecond, size: 64, jsonOnly: true})
	})
	var r postResult
	if json.Unmarshal(bytes.TrimSpace(out), &r); rc != 1 || r.Errors == 0 || r.OK != 0 || r.Error == "" {
		t.Errorf("dead server: exit %d, %s", rc, out)
	}
}
