package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"sync/atomic"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/gorilla/websocket"
)

// subscriber is one measuring connection of a fanout run: it checks every
// frame it gets against the run, its room and each sender's sequence, and
// records the latency of the valid ones.
type subscriber struct {
	conn   *websocket.Conn // nil for an event stream
	stream *sseStream      // -transport sse
	room   int
	h      hist
	tracks []seqTrack // by sender id
	// countOnly: the subscriber counts data frames without reading them
	// (-check-every), so received is a count of frames, checked by nobody.
	countOnly bool

	received atomic.Uint64 // unique, valid deliveries
	lastNs   atomic.Int64  // time of the last valid delivery
	readerEnd

	checkCounts
	sse sseCounts // -transport sse
}

// sseCounts is what an event-stream subscriber saw besides its messages.
type sseCounts struct {
	Pings        uint64 `json:"pings"`             // ": ping" (any comment line)
	IDOnly       uint64 `json:"id_only_events"`    // an id and no data (a position)
	Binary       uint64 `json:"binary_events"`     // "event: binary" (base64 data)
	Other        uint64 `json:"other_events"`      // any other event type (reset, ...)
	BadBase64    uint64 `json:"bad_base64"`        // binary events whose data did not decode
	WithID       uint64 `json:"events_with_id"`    // message events with an id line
	IDBackwards  uint64 `json:"id_backwards"`      // an id offset not above the one before
	UnknownLines uint64 `json:"unknown_fields"`    // lines of other fields (retry, ...)
	Streams      int    `json:"streams,omitempty"` // in a result: subscribers summed
}

func (a *sseCounts) add(b *sseCounts) {
	a.Pings += b.Pings
	a.IDOnly += b.IDOnly
	a.Binary += b.Binary
	a.Other += b.Other
	a.BadBase64 += b.BadBase64
	a.WithID += b.WithID
	a.IDBackwards += b.IDBackwards
	a.UnknownLines += b.UnknownLines
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
		s.account(buf[:n], nowNs(), run, pubRoom)
	}
}

// countFrames is the reader of a countOnly subscriber. It reads the
// server's frames off the socket itself, under gorilla, which is not used
// again: gorilla would inflate every compressed message (and allocate a
// 4 KiB buffer for it) even unread, which at a million deliveries a second
// is the load tool's CPU, not the server's. The server writes nothing
// before the first message, so gorilla's handshake left nothing buffered;
// its frames are whole messages, unmasked. Pings go unanswered, so a run
// must end within two of the route's ping intervals (60 s by default).
func (s *subscriber) countFrames(stopping *atomic.Bool) {
	br := bufio.NewReaderSize(s.conn.NetConn(), 32<<10)
	for {
		op, n, err := frameHeader(br)
		if err == nil {
			_, err = io.CopyN(io.Discard, br, n)
		}
		if err != nil {
			s.end(err, stopping)
			return
		}
		switch op {
		case websocket.TextMessage, websocket.BinaryMessage:
			s.lastNs.Store(nowNs())
			s.received.Add(1)
		case websocket.CloseMessage:
			s.end(errServerClosed, stopping)
			return
		}
	}
}

// frameHeader reads a server frame's header: its opcode and payload length.
func frameHeader(br *bufio.Reader) (op byte, n int64, err error) {
	var hdr [8]byte
	if _, err = io.ReadFull(br, hdr[:2]); err != nil {
		return 0, 0, err
	}
	op, n = hdr[0]&0x0f, int64(hdr[1]&0x7f)
	switch n {
	case 126:
		_, err = io.ReadFull(br, hdr[:2])
		n = int64(binary.BigEndian.Uint16(hdr[:2]))
	case 127:
		_, err = io.ReadFull(br, hdr[:8])
		n = int64(binary.BigEndian.Uint64(hdr[:8]))
	}
	return op, n, err
}

// errServerClosed ends a countOnly subscriber that got a close frame.
var errServerClosed = errors.New("close frame")

// readSSE is the one reader of an event-stream subscriber: every message
// event's data (decoded for "binary") goes through the same checks as a
// WebSocket frame's payload.
func (s *subscriber) readSSE(c *config, run uint32, pubRoom []int, stopping *atomic.Bool) {
	limit := max(c.size, headerSize)
	rd := s.stream.rd
	var lastOff uint64
	for {
		ev, err := rd.next()
		if err != nil {
			s.sse.Pings, s.sse.UnknownLines = rd.comments, rd.unknown
			s.end(sseEndErr(err), stopping)
			return
		}
		now := nowNs()
		if ev.hasID {
			if off, ok := idOffset(ev.id); ok {
				if lastOff != 0 && off <= lastOff {
					s.sse.IDBackwards++
				}
				lastOff = off
			}
		}
		switch {
		case !ev.hasData:
			s.sse.IDOnly++
			continue
		case len(ev.typ) == 0 || string(ev.typ) == protocol.EventMessage:
		case string(ev.typ) == protocol.EventBinary:
			s.sse.Binary++
			if ev.badB64 {
				s.sse.BadBase64++
				s.malformed++
				continue
			}
		default:
			s.sse.Other++
			continue
		}
		if ev.hasID {
			s.sse.WithID++
		}
		if len(ev.data) > limit {
			s.malformed++
			continue
		}
		s.account(ev.data, now, run, pubRoom)
	}
}

// account checks one payload received at now against the run, the
// subscriber's room and its sender's sequence, and records it.
func (s *subscriber) account(payload []byte, now int64, run uint32, pubRoom []int) {
	hd, err := parseHeader(payload)
	if err != nil {
		s.malformed++
		return
	}
	if hd.run != run || int(hd.sender) >= len(s.tracks) {
		s.foreign++
		return
	}
	if pubRoom[hd.sender] != s.room {
		s.crossRoom++
		return
	}
	dup, reord := s.tracks[hd.sender].add(hd.seq)
	if dup {
		s.dups++
		return
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
