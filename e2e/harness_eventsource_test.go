package e2e

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

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

// LastID is the id it would reconnect with.
func (es *eventSource) LastID() string {
	es.mu.Lock()
	defer es.mu.Unlock()
	return es.lastID
}
