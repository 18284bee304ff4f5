package main

import (
	"context"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// reconnects lets the idle WebSockets of a conns run with -reconnect come
// back when the server ends them, as a client library does: the same URL
// (a balancer), retried every 100 ms until it opens or the run stops. It
// counts the reconnects by the second they opened in, and owns the current
// connection of each slot, so that the end of the run closes those.
type reconnects struct {
	dial func(ctx context.Context, url string) (*websocket.Conn, error)
	c    *config

	mu       sync.Mutex
	conns    []*websocket.Conn
	urls     []string
	stopping bool
	bySecond map[int64]int // Unix second → reconnects that opened in it
	count    int
}

func newReconnects(c *config, d *dialResult) *reconnects {
	dialer, hdr := newWSDialer(c, 1024, 1024), c.header()
	return &reconnects{
		c: c, conns: d.conns, urls: d.urls, bySecond: map[int64]int{},
		dial: func(ctx context.Context, url string) (*websocket.Conn, error) {
			conn, resp, err := dialer.DialContext(ctx, url, hdr)
			if resp != nil && resp.Body != nil {
				resp.Body.Close()
			}
			return conn, err
		},
	}
}

// again opens slot i anew; nil once the run is stopping.
func (r *reconnects) again(i int) *websocket.Conn {
	for {
		r.mu.Lock()
		stopping := r.stopping
		r.mu.Unlock()
		if stopping {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), r.c.handshake)
		conn, err := r.dial(ctx, r.urls[i])
		cancel()
		if err != nil {
			time.Sleep(100 * time.Millisecond) // the client's backoff between tries
			continue
		}
		r.mu.Lock()
		if r.stopping {
			r.mu.Unlock()
			conn.Close()
			return nil
		}
		r.conns[i] = conn
		r.bySecond[time.Now().Unix()]++
		r.count++
		r.mu.Unlock()
		return conn
	}
}

// closeAll stops the reconnects and closes the current connections.
func (r *reconnects) closeAll() {
	r.mu.Lock()
	r.stopping = true
	conns := r.conns
	r.mu.Unlock()
	closeAll(conns)
}
