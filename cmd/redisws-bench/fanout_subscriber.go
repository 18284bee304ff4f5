package main

import (
	"io"
	"sync/atomic"

	"github.com/gorilla/websocket"
)

// subscriber is one measuring connection of a fanout run: it checks every
// frame it gets against the run, its room and each sender's sequence, and
// records the latency of the valid ones.
type subscriber struct {
	conn   *websocket.Conn
	room   int
	h      hist
	tracks []seqTrack // by sender id

	received atomic.Uint64 // unique, valid deliveries
	lastNs   atomic.Int64  // time of the last valid delivery
	readerEnd

	dups      uint64
	reordered uint64
	foreign   uint64 // of another run, or an unknown sender
	crossRoom uint64 // of this run, from another room's publisher
	malformed uint64
}

// read is the one reader of a subscriber connection. pubRoom is the room
// of each sender id.
func (s *subscriber) read(c *config, run uint32, pubRoom []int, stopping *atomic.Bool) {
	buf := make([]byte, max(c.size, headerSize))
	for {
		_, r, err := s.conn.NextReader()
		if err != nil {
			s.end(err, stopping)
			return
		}
		n, err := io.ReadFull(r, buf)
		switch err {
		case nil:
			// buffer full: the frame may be longer than -size; skip the rest
			if m, _ := io.Copy(io.Discard, r); m > 0 {
				s.malformed++
				continue
			}
		case io.EOF, io.ErrUnexpectedEOF:
		default:
			s.end(err, stopping)
			return
		}
		now := nowNs()
		hd, err := parseHeader(buf[:n])
		if err != nil {
			s.malformed++
			continue
		}
		if hd.run != run || int(hd.sender) >= len(s.tracks) {
			s.foreign++
			continue
		}
		if pubRoom[hd.sender] != s.room {
			s.crossRoom++
			continue
		}
		dup, reord := s.tracks[hd.sender].add(hd.seq)
		if dup {
			s.dups++
			continue
		}
		if reord {
			s.reordered++
		}
		lat := now - hd.sentNs
		if lat < 0 {
			lat = 0
		}
		s.h.record(uint64(lat / 1000))
		s.lastNs.Store(now)
		s.received.Add(1)
	}
}
