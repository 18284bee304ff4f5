package main

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/gorilla/websocket"
)

// resumeClient is one client of the storm.
type resumeClient struct {
	url   string
	check *replayCheck
	conn  atomic.Pointer[websocket.Conn]

	dialErr   error
	readErr   error
	connected time.Duration // handshake time
	upAt      time.Duration // storm start → handshake done
	caughtUp  time.Duration // storm start → every replayed message
	live      time.Duration // storm start → the live message
}

func (rc *resumeClient) run(d *websocket.Dialer, hdr http.Header, timeout time.Duration, sem chan struct{},
	start, end time.Time, latest int64, caughtUp, live *atomic.Int64) {
	sem <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t0 := time.Now()
	conn, resp, err := d.DialContext(ctx, rc.url, hdr)
	cancel()
	<-sem
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%v (HTTP %d)", err, resp.StatusCode)
		}
		rc.dialErr = err
		return
	}
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	rc.connected = time.Since(t0)
	rc.upAt = time.Since(start)
	rc.conn.Store(conn)
	if conn.Subprotocol() != protocol.Subprotocol {
		rc.check.errs["no_subprotocol"]++
	}
	_ = conn.SetReadDeadline(end)
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			rc.readErr = err
			return
		}
		at := time.Since(start)
		before := rc.check.upTo()
		upTo := rc.check.add(b)
		if before < latest && upTo >= latest {
			rc.caughtUp = at
			caughtUp.Add(1)
		}
		if upTo > latest {
			rc.live = at
			live.Add(1)
			return
		}
	}
}

// stop ends the client's connection (its reader then returns).
func (rc *resumeClient) stop() {
	if conn := rc.conn.Load(); conn != nil {
		closeAll([]*websocket.Conn{conn})
	}
}

// readUntil reads frames into r until it has every offset up to upTo.
func readUntil(conn *websocket.Conn, r *replayCheck, upTo int64, deadline time.Time) error {
	_ = conn.SetReadDeadline(deadline)
	defer conn.SetReadDeadline(time.Time{})
	for r.upTo() < upTo {
		_, b, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("at offset %d of %d: %w", r.upTo(), upTo, err)
		}
		r.add(b)
	}
	return nil
}
