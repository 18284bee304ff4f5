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
	"fmt"
	"io"
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

// EndErr is why the stream ended (io.EOF: its response was complete),
// once WaitEnded returned.
func (c *sseClient) EndErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
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

// numbered is prefix1 .. prefixN.
func numbered(prefix string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = prefix + strconv.Itoa(i+1)
	}
	return s
}
