package main

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

const (
	slowQuiet     = time.Second      // a slow connection silent this long is still open
	slowCheckMax  = 20 * time.Second // the whole check, all connections at once
	slowMaxFrames = 1 << 20          // frames read from one slow connection at most
)

// checkSlow reads every slow connection (the ones that never read during
// the run) until it fails, all at once, and counts how each ended: a close
// code, "eof" or "reset" when the server closed it, "timeout" when nothing
// came for slowQuiet (the server keeps it open), "unfinished" when the
// check ran out of time or frames, or "error".
func checkSlow(conns []*websocket.Conn) (ends map[string]int, frames uint64) {
	ends = map[string]int{}
	deadline := time.Now().Add(slowCheckMax)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, conn := range conns {
		if conn == nil {
			continue
		}
		wg.Add(1)
		go func(conn *websocket.Conn) {
			defer wg.Done()
			end, n := readSlow(conn, deadline)
			mu.Lock()
			ends[end]++
			frames += n
			mu.Unlock()
		}(conn)
	}
	wg.Wait()
	return ends, frames
}

func readSlow(conn *websocket.Conn, deadline time.Time) (end string, frames uint64) {
	for frames < slowMaxFrames {
		if time.Now().After(deadline) {
			return "unfinished", frames
		}
		_ = conn.SetReadDeadline(time.Now().Add(slowQuiet))
		_, r, err := conn.NextReader()
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		}
		if err != nil {
			return slowEnd(err), frames
		}
		frames++
	}
	return "unfinished", frames
}

// slowEnd names how a slow connection's read ended. gorilla reports a TCP
// end without a close frame as 1006, which is never sent on the wire.
func slowEnd(err error) string {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce) && ce.Code == websocket.CloseAbnormalClosure:
		return "eof"
	case errors.As(err, &ce):
		return strconv.Itoa(ce.Code)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "error"
}

// slowClosed counts the ends that mean the server closed the connection.
func slowClosed(ends map[string]int) (closed, open int) {
	for k, v := range ends {
		switch k {
		case "timeout":
			open += v
		case "unfinished", "error":
		default:
			closed += v
		}
	}
	return closed, open
}
