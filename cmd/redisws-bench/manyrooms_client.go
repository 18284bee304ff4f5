package main

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// roomsConn is one subscriber connection of a manyrooms run: one WebSocket
// that subscribes to its rooms by command and then checks every message it
// gets against the run, its rooms and each room's sequence. Its goroutine
// (session) is the one reader and the one writer of the connection.
type roomsConn struct {
	conn  *websocket.Conn
	node  int
	rooms []int
	slot  map[int]int // room → index into tracks
	// tracks follows each room's sequence numbers (the payload's sender id
	// is its room).
	tracks []seqTrack

	firstID uint64  // id of the first subscribe; the k-th has firstID+k
	subSent []int64 // send time of each subscribe
	subLat  hist    // time from each subscribe to its answer
	subOK   atomic.Int32
	subErrs int
	subErr  string // the first refusal
	h       hist   // delivery latency
	pongs   uint64

	received atomic.Uint64 // unique, valid deliveries
	lastNs   atomic.Int64  // time of the last one
	readerEnd

	checkCounts
}

func newRoomsConn(conn *websocket.Conn, node int, rooms []int) *roomsConn {
	rc := &roomsConn{conn: conn, node: node, rooms: rooms, slot: make(map[int]int, len(rooms)), tracks: make([]seqTrack, len(rooms))}
	for i, r := range rooms {
		rc.slot[r] = i
	}
	return rc
}

// errNotConnected ends a Centrifugo connection whose connect was refused.
var errNotConnected = errors.New("connect refused")

// session connects (Centrifugo), sends every subscribe at once, as an
// application joining its rooms does, then reads until the connection ends.
func (rc *roomsConn) session(srv roomsServer, run uint32, timeout time.Duration, stopping *atomic.Bool) {
	rc.firstID = 1
	if cmd := srv.connectCmd(); cmd != nil {
		if err := handshakeCmd(rc.conn, cmd, timeout); err != nil {
			rc.end(err, stopping)
			return
		}
		rc.firstID = 2
	}
	rc.subSent = make([]int64, len(rc.rooms))
	for k, r := range rc.rooms {
		rc.subSent[k] = nowNs()
		if err := rc.conn.WriteMessage(websocket.TextMessage, srv.subscribeCmd(rc.firstID+uint64(k), r)); err != nil {
			rc.end(err, stopping)
			return
		}
	}
	var buf bytes.Buffer
	for {
		err := readMessages(rc.conn, &buf, func(msg []byte) error { return rc.handle(msg, nowNs(), run) })
		if err != nil {
			rc.end(err, stopping)
			return
		}
	}
}

// handle takes one message: a delivery, a subscribe's answer or a ping.
func (rc *roomsConn) handle(msg []byte, now int64, run uint32) error {
	if data, ok := deliveryData(msg); ok {
		rc.account(data, now, run)
		return nil
	}
	rp, err := parseReply(msg)
	switch {
	case err != nil:
		rc.malformed++
	case rp.ping:
		rc.pongs++
		return rc.conn.WriteMessage(websocket.TextMessage, pong)
	case rp.id >= rc.firstID && rp.id < rc.firstID+uint64(len(rc.rooms)):
		k := rp.id - rc.firstID
		rc.subLat.record(uint64(max(now-rc.subSent[k], 0) / 1000))
		if rp.error != "" {
			rc.subErrs++
			if rc.subErr == "" {
				rc.subErr = rp.error
			}
			return nil
		}
		rc.subOK.Add(1)
	}
	return nil
}

// account checks one payload received at now and records it.
func (rc *roomsConn) account(payload []byte, now int64, run uint32) {
	hd, err := parseHeader(payload)
	if err != nil {
		rc.malformed++
		return
	}
	if hd.run != run {
		rc.foreign++
		return
	}
	k, ok := rc.slot[int(hd.sender)]
	if !ok {
		rc.crossRoom++
		return
	}
	dup, reord := rc.tracks[k].add(hd.seq)
	if dup {
		rc.dups++
		return
	}
	if reord {
		rc.reordered++
	}
	rc.h.record(uint64(max(now-hd.sentNs, 0) / 1000))
	rc.lastNs.Store(now)
	rc.received.Add(1)
}

// handshakeCmd sends a connection's connect command (id 1) and reads until
// its answer, within timeout.
func handshakeCmd(conn *websocket.Conn, cmd []byte, timeout time.Duration) error {
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	defer conn.SetReadDeadline(time.Time{})
	if err := conn.WriteMessage(websocket.TextMessage, cmd); err != nil {
		return err
	}
	for {
		_, frame, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("awaiting the connect answer: %w", err)
		}
		rp, err := parseReply(bytes.TrimSpace(frame))
		if err != nil || rp.id != 1 {
			continue
		}
		if rp.error != "" {
			return fmt.Errorf("%w: %s", errNotConnected, rp.error)
		}
		return nil
	}
}
