package e2e

// The HTTP test clients: sseClient reads one event stream as EventSource
// does (an event per blank line, id kept across events, comments counted),
// eventSource reconnects like a browser's EventSource, with Last-Event-ID,
// postMessage publishes with a POST, and rawRequest sends a request exactly
// as written.

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// sseEvent is one dispatched event: one with data. id is the stream's last
// event id when it was dispatched.
type sseEvent struct {
	Type, Data, ID string
}

func (e sseEvent) String() string { return fmt.Sprintf("{%s id=%q %q}", e.Type, e.ID, e.Data) }

type sseClient struct {
	URL  string
	Resp *http.Response

	mu       sync.Mutex
	events   []sseEvent
	received int // events dispatched, those taken by Collect included
	lastID   string
	comments int
	badID    error         // the first id that is not as package protocol writes it
	notify   chan struct{} // cap 1
	done     chan struct{} // the stream ended
	err      error         // why, valid after done
	cancel   context.CancelFunc
}

// sseHTTP keeps no idle connections (goleak) and no proxy; each stream is
// its own request.
var sseHTTP = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

// tryDialSSE opens a stream; a non-200 answer is returned with its body
// read into the error.
func tryDialSSE(t testing.TB, client *http.Client, url string, header http.Header) (*sseClient, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := openStream(ctx, client, url, header)
	if err != nil {
		cancel()
		return nil, err
	}
	c := &sseClient{URL: url, Resp: resp, notify: make(chan struct{}, 1), done: make(chan struct{}), cancel: cancel}
	go c.read()
	t.Cleanup(c.Close)
	return c, nil
}

// openStream sends the GET of an event stream; an answer other than 200 is
// an *sseRefused.
func openStream(ctx context.Context, client *http.Client, url string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		resp.Body.Close()
		return nil, &sseRefused{resp.StatusCode, resp.Header, string(body)}
	}
	return resp, nil
}

// sseRefused is a stream answered with something else than 200.
type sseRefused struct {
	Status int
	Header http.Header
	Body   string
}

func (e *sseRefused) Error() string { return fmt.Sprintf("HTTP %d: %q", e.Status, e.Body) }

func dialSSE(t testing.TB, url string, header http.Header) *sseClient {
	t.Helper()
	c, err := tryDialSSE(t, sseHTTP, url, header)
	if err != nil {
		t.Fatalf("event stream %s: %v", url, err)
	}
	if ct := c.Resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("event stream %s: Content-Type %q", url, ct)
	}
	return c
}

// read parses the stream as the HTML standard's EventSource does.
func (c *sseClient) read() {
	r := bufio.NewReader(c.Resp.Body)
	var typ, data, id string
	hasData := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			close(c.done)
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			c.mu.Lock()
			c.lastID = id
			if hasData {
				if typ == "" {
					typ = protocol.EventMessage
				}
				c.events = append(c.events, sseEvent{typ, strings.TrimSuffix(data, "\n"), id})
				c.received++
			}
			c.mu.Unlock()
			signalTest(c.notify)
			typ, data, hasData = "", "", false
		case strings.HasPrefix(line, ":"):
			c.mu.Lock()
			c.comments++
			c.mu.Unlock()
			signalTest(c.notify)
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "data":
				data += value + "\n"
				hasData = true
			case "event":
				typ = value
			case "id":
				id = value
				if err := checkEventID(id); err != nil {
					c.mu.Lock()
					c.badID = cmp.Or(c.badID, err)
					c.mu.Unlock()
				}
			}
		}
	}
}

// checkEventID checks an id the server sent: protocol.ParseEventID reads
// it, and protocol.FormatEventID writes it back the same.
func checkEventID(id string) error {
	ps, err := protocol.ParseEventID(id)
	if err != nil {
		return err
	}
	if back := protocol.FormatEventID(ps...); back != id {
		return fmt.Errorf("event id %q is not as package protocol writes it: %q", id, back)
	}
	return nil
}

func signalTest(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Next returns the next event, or fails the test after timeout.
func (c *sseClient) Next(t testing.TB, timeout time.Duration) sseEvent {
	t.Helper()
	return c.Collect(t, 1, timeout)[0]
}

// Collect returns the next n events, or fails the test after timeout or
// once the stream sent an id that checkEventID refuses.
func (c *sseClient) Collect(t testing.TB, n int, timeout time.Duration) []sseEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		if c.badID != nil {
			c.mu.Unlock()
			t.Fatalf("%s: %v", c.URL, c.badID)
		}
		if len(c.events) >= n {
			got := c.events[:n:n]
			c.events = c.events[n:]
			c.mu.Unlock()
			return got
		}
		have := len(c.events)
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-c.done:
			c.mu.Lock()
			have, err := len(c.events), c.err
			c.mu.Unlock()
			if have < n {
				t.Fatalf("%s: stream ended (%v) after %d of %d events", c.URL, err, have, n)
			}
		case <-deadline:
			t.Fatalf("%s: %d of %d events within %s", c.URL, have, n, timeout)
		}
	}
}

// ExpectNothing fails the test if an event arrives within d.
func (c *sseClient) ExpectNothing(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		n := len(c.events)
		var first sseEvent
		if n > 0 {
			first = c.events[0]
		}
		c.mu.Unlock()
		if n > 0 {
			t.Fatalf("%s: unexpected event %v", c.URL, first)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// LastID is the stream's last event id, as EventSource keeps it.
func (c *sseClient) LastID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastID
}

// Received counts the events dispatched so far.
func (c *sseClient) Received() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.received
}

func (c *sseClient) Comments() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.comments
}

// WaitEnded waits until the server ends the stream.
func (c *sseClient) WaitEnded(t testing.TB, timeout time.Duration) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		t.Fatalf("%s: stream still open after %s", c.URL, timeout)
	}
}

func (c *sseClient) Ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *sseClient) Close() {
	c.cancel()
	<-c.done
	c.Resp.Body.Close()
}

// eventSource follows a stream the way a browser's EventSource does: when
// it ends, it connects again with Last-Event-ID, every retry until stopped.
// It records every event and how many streams it opened.
type eventSource struct {
	url   string
	retry time.Duration
	stop  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	events  []sseEvent
	streams int
	lastID  string
	errs    []string // refused connection attempts, for the failure message
}

func startEventSource(t testing.TB, url string) *eventSource {
	t.Helper()
	es := &eventSource{url: url, retry: 100 * time.Millisecond, stop: make(chan struct{}), done: make(chan struct{})}
	go es.run(t)
	t.Cleanup(es.Stop)
	return es
}

func (es *eventSource) run(t testing.TB) {
	defer close(es.done)
	for {
		header := http.Header{}
		es.mu.Lock()
		if es.lastID != "" {
			header.Set("Last-Event-ID", es.lastID)
		}
		es.mu.Unlock()
		c, err := es.open(header)
		if err == nil {
			es.mu.Lock()
			es.streams++
			es.mu.Unlock()
			es.follow(c)
		} else {
			es.mu.Lock()
			es.errs = append(es.errs, err.Error())
			es.mu.Unlock()
		}
		select {
		case <-es.stop:
			return
		case <-time.After(es.retry):
		}
	}
}

// open is tryDialSSE without a testing.TB: the follower's goroutine must
// not call t.Fatalf. Stop cancels the request.
func (es *eventSource) open(header http.Header) (*http.Response, error) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-es.stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	resp, err := openStream(ctx, sseHTTP, es.url, header)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{resp.Body, cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error { b.cancel(); return b.ReadCloser.Close() }

func (es *eventSource) follow(resp *http.Response) {
	c := &sseClient{URL: es.url, Resp: resp, notify: make(chan struct{}, 1), done: make(chan struct{}), cancel: func() {}}
	go c.read()
	defer resp.Body.Close()
	for {
		select {
		case <-c.notify:
		case <-c.done:
		}
		c.mu.Lock()
		got := c.events
		c.events = nil
		id := c.lastID
		ended := c.Ended()
		c.mu.Unlock()
		es.mu.Lock()
		es.events = append(es.events, got...)
		if id != "" {
			es.lastID = id
		}
		es.mu.Unlock()
		if ended {
			// What came before the end is taken: read it once more.
			c.mu.Lock()
			rest, id := c.events, c.lastID
			c.mu.Unlock()
			es.mu.Lock()
			es.events = append(es.events, rest...)
			if id != "" {
				es.lastID = id
			}
			es.mu.Unlock()
			return
		}
	}
}

// Events returns what it got so far.
func (es *eventSource) Events() []sseEvent {
	es.mu.Lock()
	defer es.mu.Unlock()
	return append([]sseEvent(nil), es.events...)
}

func (es *eventSource) Streams() int {
	es.mu.Lock()
	defer es.mu.Unlock()
	return es.streams
}

// WaitData waits until the data of its events, in order, are want (and
// fails at once if they stop being a prefix of it).
func (es *eventSource) WaitData(t testing.TB, want []string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got := es.Events()
		for i, e := range got {
			if i >= len(want) || e.Data != want[i] {
				t.Fatalf("%s: event %d is %v; want %d events %q..., got %v", es.url, i, e, len(want), want[:min(3, len(want))], got[max(0, i-3):min(len(got), i+3)])
			}
		}
		if len(got) == len(want) {
			return
		}
		if time.Now().After(deadline) {
			es.mu.Lock()
			errs := es.errs[max(0, len(es.errs)-3):]
			es.mu.Unlock()
			t.Fatalf("%s: %d of %d events after %s (%d streams; last refusals %q)", es.url, len(got), len(want), wait, es.Streams(), errs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (es *eventSource) Stop() {
	select {
	case <-es.stop:
	default:
		close(es.stop)
	}
	<-es.done
}

// postResult is the JSON answer of a POST that published, as a client
// reads it (the server writes it from post.go's postAnswer).
type postResult struct {
	Channel   string `json:"channel"`
	Offset    int64  `json:"offset,omitempty"`
	Epoch     string `json:"epoch,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// postReply is what a POST got: its status, header and body, and the
// answer of a 200.
type postReply struct {
	Status int
	Header http.Header
	Body   string
	Answer postResult
}

// postMessage POSTs body to url with header and returns the answer; the
// JSON is decoded for a 200.
func postMessage(t testing.TB, url, body string, header http.Header) postReply {
	t.Helper()
	return postMessageVia(t, noKeepAliveClient, url, body, header)
}

// postMessageVia is postMessage through client.
func postMessageVia(t testing.TB, client *http.Client, url, body string, header http.Header) postReply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	r := postReply{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &r.Answer); err != nil {
			t.Fatalf("POST %s: 200 with a body that is not the JSON answer: %q (%v)", url, b, err)
		}
	}
	return r
}

// mustPost POSTs and fails the test unless the answer is 200.
func mustPost(t testing.TB, url, body string) postResult {
	t.Helper()
	r := postMessage(t, url, body, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("POST %s: %d %q", url, r.Status, r.Body)
	}
	return r.Answer
}

// LastID is the id it would reconnect with.
func (es *eventSource) LastID() string {
	es.mu.Lock()
	defer es.mu.Unlock()
	return es.lastID
}

// numbered is prefix1 .. prefixN.
func numbered(prefix string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = prefix + strconv.Itoa(i+1)
	}
	return s
}

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
