package redisws

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/gorilla/websocket"
)

// corkConn is the connection under gorilla. gorilla writes every frame with
// its own write system call; while corked, writes are collected instead and
// uncork sends them in one. The write syscall per frame is what limits
// fan-out, so the writer corks around each batch of queued frames.
//
// It relies on what gorilla/websocket v1.5.3 does with the connection it is
// given (wire_test.go fails if a new version stops doing it):
//   - every write gorilla makes by itself is one Write call: the handshake
//     response first (which tells whether permessage-deflate was agreed),
//     then whole frames: each control frame of WriteControl (pings,
//     the pong and close replies its reader sends). We never call its
//     WriteMessage or NextWriter, which may split one frame over two Writes;
//     our frames are appended by appendFrames, so frames never interleave.
//   - WriteControl may run on the reader's goroutine while the writer writes;
//     gorilla only orders its own writes, so c.mu orders them with ours.
//   - gorilla sets a write deadline before each write; they are ignored, and
//     every socket write gets a fresh one here.
//   - gorilla reads everything the client sends after the handshake through
//     Read (from a buffered reader of its own, or net/http's, which it resets
//     onto this connection), where frames follows the headers of the
//     client's frames; TestCloseAndReservedFrames fails if it stops.
type corkConn struct {
	net.Conn
	cutoff writeCutoff
	frames clientFrames // the reader goroutine's only
	// in: with the poller, what the client sent, which Read serves
	// without ever blocking; nil: Read reads the socket.
	in *clientInput

	mu     sync.Mutex
	corked bool
	buf    *[]byte // from corkBuffers while corked

	answered bool // gorilla has written its handshake response
	deflate  bool // in which it agreed to permessage-deflate
}

// errNothingBuffered ends a polled connection whose gorilla reads beyond
// the whole messages the poller found: a bug, never a wait.
var errNothingBuffered = errors.New("redis_ws: read beyond the buffered messages")

// corkBuffers holds the batch buffers, so an idle connection holds none.
var corkBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBuffer keeps buffers grown by a rare huge batch out of the pool.
const maxPooledBuffer = 1 << 20

func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.buf = corkBuffers.Get().(*[]byte)
	c.mu.Unlock()
}

// uncork sends what was collected since cork, within timeout.
func (c *corkConn) uncork(timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	buf := c.buf
	c.buf = nil
	var err error
	if len(*buf) > 0 {
		c.setDeadline(timeout)
		_, err = c.Conn.Write(*buf)
	}
	if cap(*buf) <= maxPooledBuffer {
		*buf = (*buf)[:0]
		corkBuffers.Put(buf)
	}
	return err
}

// appendFrames adds whole frames to the batch, compressed from payloads
// of deflateFrom bytes (0: none).
func (c *corkConn) appendFrames(frames []*frame.Frame, deflateFrom int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range frames {
		if deflateFrom > 0 && f.Size >= deflateFrom {
			*c.buf = append(*c.buf, f.CompressedWire()...)
		} else {
			*c.buf = append(*c.buf, f.Wire...)
		}
	}
}

// Write collects p while corked; writes from the reader's goroutine
// (gorilla's pong and close replies) then join the batch.
func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.answered {
		c.answered, c.deflate = true, bytes.Contains(p, deflateAgreed)
	}
	if c.corked {
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	c.setDeadline(fanout.WriteWait)
	return c.Conn.Write(p)
}

// Read is gorilla's read of what the client sends.
func (c *corkConn) Read(p []byte) (int, error) {
	if c.in != nil {
		n := c.in.read(p)
		c.frames.follow(p[:n])
		if n == 0 { // gorilla was asked for no more than is here
			return 0, errNothingBuffered
		}
		return n, nil
	}
	n, err := c.Conn.Read(p)
	c.frames.follow(p[:n])
	return n, err
}

func (c *corkConn) setDeadline(timeout time.Duration) {
	c.cutoff.deadline(timeout, c.Conn)
}

// cut makes every write, the one in progress included, end within grace.
// A client that is closed for being too slow may still take its close frame
// in that time; otherwise its socket, and the kernel buffers it pins, are
// freed then instead of after writeWait.
func (c *corkConn) cut(grace time.Duration) { c.cutoff.cut(grace, c.Conn) }

// writeCutoff is a time that no write to a connection may last beyond, once
// cut sets it; until then every write gets its own timeout.
type writeCutoff struct{ at atomic.Int64 } // unix nanos; 0: none

// deadline gives the next write timeout, or less if cut set an earlier end.
// The cutoff is read again after the deadline is set: either this sees it,
// or cut's own deadline comes after this one.
func (w *writeCutoff) deadline(timeout time.Duration, c deadliner) {
	d := time.Now().Add(timeout).UnixNano()
	if cut := w.at.Load(); cut != 0 {
		d = min(d, cut)
	}
	_ = c.SetWriteDeadline(time.Unix(0, d))
	if cut := w.at.Load(); cut != 0 && cut < d {
		_ = c.SetWriteDeadline(time.Unix(0, cut))
	}
}

// clear lifts the write timeout once a write is done, keeping the cut's end
// if there is one: Go's HTTP/2 server resets a stream whose write deadline
// passes even while nothing is written, which killed idle event streams
// 10 s after each ping. The cutoff is read after the clear, as in deadline.
func (w *writeCutoff) clear(c deadliner) {
	_ = c.SetWriteDeadline(time.Time{})
	if cut := w.at.Load(); cut != 0 {
		_ = c.SetWriteDeadline(time.Unix(0, cut))
	}
}

func (w *writeCutoff) cut(grace time.Duration, c deadliner) {
	at := time.Now().Add(grace)
	w.at.Store(at.UnixNano())
	_ = c.SetWriteDeadline(at)
}

// deadliner is a net.Conn or an http.ResponseController.
type deadliner interface{ SetWriteDeadline(time.Time) error }

// SetWriteDeadline ignores gorilla's deadlines: see the type's comment.
func (c *corkConn) SetWriteDeadline(time.Time) error { return nil }

// clientFrames follows the headers of the frames a client sends, skipping
// their payloads, for what gorilla v1.5.3 does not tell: the body length of
// the first close frame (the last frame gorilla reads). gorilla parses a
// close body only from 2 bytes on and takes 1 byte for no body; RFC 6455
// §5.5.1 makes it a protocol error.
type clientFrames struct {
	hdr     [maxClientHeader]byte
	n       int    // bytes of hdr read so far
	skip    uint64 // payload bytes of the current frame still to come
	closing bool   // a close frame's header was read
	// oneByteClose: its body is 1 byte long.
	oneByteClose bool
}

// maxClientHeader: 2 bytes, a 64-bit length and the mask key.
const maxClientHeader = 2 + 8 + 4

func (s *clientFrames) follow(p []byte) {
	for len(p) > 0 && !s.closing {
		switch {
		case s.skip > 0:
			k := min(s.skip, uint64(len(p)))
			s.skip -= k
			p = p[k:]
		case s.n == 0 && len(p) >= maxClientHeader: // a whole header: at once
			n := clientHeaderLen(p)
			s.header(p[:n])
			p = p[n:]
		default: // a header split over reads: byte by byte
			s.hdr[s.n] = p[0]
			s.n++
			p = p[1:]
			if h := s.hdr[:s.n]; s.n == clientHeaderLen(h) {
				s.n = 0
				s.header(h)
			}
		}
	}
}

// header takes a frame's whole header: a close ends the scan, the payload
// of any other frame is skipped.
func (s *clientFrames) header(h []byte) {
	if h[0]&0x0f == websocket.CloseMessage {
		s.closing, s.oneByteClose = true, clientPayloadLen(h) == 1
		return
	}
	s.skip = clientPayloadLen(h)
}

// clientHeaderLen is the length of the frame header that h begins.
func clientHeaderLen(h []byte) int {
	if len(h) < 2 {
		return 2
	}
	n := 2
	switch h[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if h[1]&0x80 != 0 { // masked, as a client's frame must be
		n += 4
	}
	return n
}

// clientPayloadLen is the payload length a whole header declares.
func clientPayloadLen(h []byte) uint64 {
	switch n := h[1] & 0x7f; n {
	case 126:
		return uint64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		return binary.BigEndian.Uint64(h[2:])
	default:
		return uint64(n)
	}
}
