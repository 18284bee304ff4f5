package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// idleReaders is the one reader per connection of a conns run: it answers
// pings (gorilla does on read), notices closes, and counts what arrives. A
// message whose payload is a decimal Unix time in nanoseconds (what
// bench/idle.sh publishes) adds its delivery latency.
type idleReaders struct {
	stopping atomic.Bool
	seen     atomic.Uint64
	lastAt   atomic.Int64 // Unix ms of the last message received
	wg       sync.WaitGroup

	mu          sync.Mutex
	disconnects int
	codes       map[string]int
	latency     hist
}

func (r *idleReaders) ended(err error) {
	if r.stopping.Load() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.disconnects++
	r.codes[closeKey(err)]++
}

func (r *idleReaders) message(payload []byte) {
	r.seen.Add(1)
	at := time.Now().UnixNano()
	r.lastAt.Store(at / 1e6)
	sent, err := strconv.ParseInt(string(bytes.TrimSpace(payload)), 10, 64)
	if err != nil || sent <= 0 || sent > at {
		return
	}
	r.mu.Lock()
	r.latency.record(uint64(at-sent) / 1000)
	r.mu.Unlock()
}

// watchWS reads conn; when the server ends it and again is set, the
// connection again returns is read next (nil: the run is ending).
func (r *idleReaders) watchWS(conn *websocket.Conn, again func() *websocket.Conn) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			_, rd, err := conn.NextReader()
			if err != nil {
				r.ended(err)
				if again == nil || r.stopping.Load() {
					return
				}
				if conn = again(); conn == nil {
					return
				}
				continue
			}
			b, _ := io.ReadAll(io.LimitReader(rd, 32)) // a stamp is 19 digits
			r.message(b)
		}
	}()
}

func (r *idleReaders) watchStream(s *sseStream) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			ev, err := s.rd.next()
			if err != nil {
				r.ended(sseEndErr(err))
				return
			}
			if ev.hasData {
				r.message(ev.data)
			}
		}
	}()
}

// holdIdle waits for d, or until a script that has seen what it wanted
// sends SIGINT or SIGTERM: the run then closes and reports as usual.
func holdIdle(d time.Duration) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// writeReady tells a script that the connections are open: the file
// appears whole (written aside, then renamed) holding how many are.
func writeReady(path string, opened int) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(opened)+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// checkTransport: ws for every mode; sse for fanout (without -slow) and
// conns; h2 for conns only. Event streams need http:// or ws:// URLs.
func (c *config) checkTransport() error {
	switch c.transport {
	case "ws":
		return nil
	case "sse", "h2":
	default:
		return fmt.Errorf("-transport %q: ws, sse or h2", c.transport)
	}
	if c.mode != "conns" && (c.mode != "fanout" || c.transport != "sse" || c.slow != 0) {
		return errors.New("-transport sse is for fanout (without -slow) and conns; h2 for conns only")
	}
	for _, u := range c.urls {
		if _, err := httpURL(u); err != nil {
			return fmt.Errorf("-transport %s: %w", c.transport, err)
		}
	}
	return nil
}
