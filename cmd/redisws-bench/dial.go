package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// dialResult is the outcome of opening n connections.
type dialResult struct {
	conns   []*websocket.Conn // nil where the connection failed
	streams []*sseStream      // dialAllSSE: nil where the stream failed
	urls    []string          // URL of each connection
	times   []time.Duration   // handshake times of the successful ones
	failed  int
	errs    map[string]int // error text → count (at most maxErrKeys keys)
}

// connectStats is the connect phase in a JSON line. The fanout and conns
// results embed it where these fields always stood, so their lines keep
// their shape.
type connectStats struct {
	ConnectErrors   int            `json:"connect_errors"`
	ConnectErrorMsg map[string]int `json:"connect_error_samples,omitempty"`
	ConnectP50Ms    float64        `json:"connect_p50_ms"`
	ConnectP99Ms    float64        `json:"connect_p99_ms"`
	ConnectMaxMs    float64        `json:"connect_max_ms"`
	ConnectPhaseS   float64        `json:"connect_phase_s"`
}

// countConnects fills s from the dials of a connect phase that began at start.
func (s *connectStats) countConnects(start time.Time, dials ...*dialResult) {
	s.ConnectPhaseS = round3(time.Since(start).Seconds())
	var times []time.Duration
	for _, d := range dials {
		s.ConnectErrors += d.failed
		for k, v := range d.errs {
			if s.ConnectErrorMsg == nil {
				s.ConnectErrorMsg = map[string]int{}
			}
			s.ConnectErrorMsg[k] += v
		}
		times = append(times, d.times...)
	}
	p50, p99, pmax := durQuantiles(times)
	s.ConnectP50Ms, s.ConnectP99Ms, s.ConnectMaxMs = durMs(p50), durMs(p99), durMs(pmax)
}

const (
	maxInFlight = 256
	maxErrKeys  = 8
)

// newWSDialer connects to loopback addresses only, whatever the URL resolved to.
func newWSDialer(c *config, readBuf, writeBuf int) *websocket.Dialer {
	return &websocket.Dialer{
		NetDialContext:    c.dialer.DialContext,
		HandshakeTimeout:  c.handshake,
		EnableCompression: c.compress,
		ReadBufferSize:    readBuf,
		WriteBufferSize:   writeBuf,
		Subprotocols:      c.subprotocols,
	}
}

// header is the handshake's request header: Origin when -origin is set.
func (c *config) header() http.Header {
	h := http.Header{}
	if c.origin != "" {
		h.Set("Origin", c.origin)
	}
	return h
}

// connectBudget is how long opening n connections may take: n at
// -connect-rate, plus one handshake timeout and 10 s to spare.
func (c *config) connectBudget(n int) time.Duration {
	return time.Duration(float64(n)/c.connectRate*float64(time.Second)) + c.handshake + 10*time.Second
}

// dialAll opens one WebSocket connection to each of targets, at most
// c.connectRate per second and maxInFlight at once, and stops starting new
// ones at deadline. With read set, the connections add every byte they
// read off their sockets to it.
func dialAll(c *config, targets []string, readBuf, writeBuf int, deadline time.Time, read *atomic.Int64) *dialResult {
	return dialAllThen(c, targets, readBuf, writeBuf, deadline, read, nil)
}

// dialAllThen is dialAll that hands each connection to opened (when not
// nil) as soon as it is open, from the goroutine that opened it.
func dialAllThen(c *config, targets []string, readBuf, writeBuf int, deadline time.Time, read *atomic.Int64, opened func(i int, conn *websocket.Conn)) *dialResult {
	r := &dialResult{conns: make([]*websocket.Conn, len(targets))}
	d := newWSDialer(c, readBuf, writeBuf)
	if read != nil {
		dial := d.NetDialContext
		d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: conn, read: read}, nil
		}
	}
	hdr := c.header()
	dialEach(c, r, targets, deadline, func(ctx context.Context, i int) error {
		conn, resp, err := d.DialContext(ctx, targets[i], hdr)
		if err != nil {
			if resp != nil {
				err = fmt.Errorf("%v (HTTP %d)", err, resp.StatusCode)
			}
			return err
		}
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		r.conns[i] = conn
		if opened != nil {
			opened(i, conn)
		}
		return nil
	})
	return r
}

// countingConn counts the bytes read off a connection.
type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// dialAllSSE opens one event stream to each of targets (ws:// or http://
// URLs, asked over http://; HTTP/2 with -transport h2), each on its own TCP
// connection, paced like dialAll;
// r.streams holds them, nil where one failed. A stream counts as connected once
// the server answered 200 with text/event-stream.
func dialAllSSE(c *config, targets []string, bufSize int, deadline time.Time) *dialResult {
	r := &dialResult{streams: make([]*sseStream, len(targets))}
	dialEach(c, r, targets, deadline, func(ctx context.Context, i int) error {
		u, err := httpURL(targets[i])
		if err != nil {
			return err
		}
		open := dialSSE
		if c.transport == "h2" {
			open = dialH2
		}
		s, err := open(ctx, c.dialer, u, c.origin, bufSize)
		if err != nil {
			return err
		}
		r.streams[i] = s
		return nil
	})
	return r
}

// dialEach calls dial(ctx, i) for each of targets, at most c.connectRate per
// second and maxInFlight at once, each within one handshake timeout, and
// stops starting new ones at deadline. dial stores what it opened in r (each
// i is its own slot); dialEach records the times and the errors.
func dialEach(c *config, r *dialResult, targets []string, deadline time.Time, dial func(ctx context.Context, i int) error) {
	n := len(targets)
	r.urls = targets
	r.errs = map[string]int{}
	interval := time.Duration(float64(time.Second) / c.connectRate)
	sem := make(chan struct{}, maxInFlight)
	var mu sync.Mutex
	var wg sync.WaitGroup
	addErr := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		r.failed++
		k := err.Error()
		if len(k) > 120 {
			k = k[:120]
		}
		if _, ok := r.errs[k]; ok || len(r.errs) < maxErrKeys {
			r.errs[k]++
		} else {
			r.errs["other"]++
		}
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		if time.Now().After(deadline) {
			for j := i; j < n; j++ {
				addErr(errors.New("connect phase deadline passed"))
			}
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), c.handshake)
			defer cancel()
			t0 := time.Now()
			err := dial(ctx, i)
			dt := time.Since(t0)
			if err != nil {
				addErr(err)
				return
			}
			mu.Lock()
			r.times = append(r.times, dt)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
}

// closeAll sends a normal close frame on every connection and closes it,
// without waiting for the peer's reply. The close frames share one deadline
// of 2 s in all, so a server that stopped reading cannot stall the end of a run.
func closeAll(conns []*websocket.Conn) {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bench done")
	deadline := time.Now().Add(2 * time.Second)
	for _, conn := range conns {
		if conn == nil {
			continue
		}
		_ = conn.WriteControl(websocket.CloseMessage, msg, deadline)
		_ = conn.Close()
	}
}

// closeKey names why a connection ended: the close code, or "io_error".
func closeKey(err error) string {
	var ce *websocket.CloseError
	var se *sseStreamEnd
	switch {
	case errors.As(err, &ce):
		return fmt.Sprint(ce.Code)
	case errors.As(err, &se):
		return se.key
	}
	return "io_error"
}
