package redisws

import (
	"sync"

	"github.com/gorilla/websocket"
)

// clientInput holds what a polled connection's client sent that gorilla has
// not read yet, and follows the frames in it, so that gorilla, which can
// only read by blocking, is asked for a message only once the whole of it
// is here (pending), and never reads beyond the last whole message (ready).
// Pings and pongs are taken out of the stream: gorilla would read them
// inside NextReader, and then block for the next data frame. Every other
// frame goes to gorilla as it came, compressed ones included; a frame
// gorilla refuses counts as a whole message, so that gorilla reads it and
// answers with its close code. Bounded: it holds at most one open message
// (its frames' payloads within gorilla's read limit, their headers within
// openMessageSlack) and one read's worth of whole messages, and no buffer
// at all while empty.
type clientInput struct {
	buf     *[]byte // from inputBuffers; nil while empty
	r       int     // gorilla has read buf[:r]
	ready   int     // buf[:ready] ends with a whole message
	scan    int     // the frames of buf[:scan] are followed
	pending int     // whole messages gorilla has not read yet

	limit   int64 // gorilla's read limit: the payload bytes of a message
	deflate bool  // permessage-deflate agreed: RSV1 is no error

	open     bool  // a message's first frame came, its last not yet
	text     bool  // the open message is uncompressed text: checked as it comes
	declared int64 // payload bytes the open message's frames declared
	payload  int64 // bytes of the current data frame still to come
	fin      bool  // the current data frame ends its message
	key      [4]byte
	keyPos   int
	utf8     utf8Checker
	broken   bool // a frame gorilla refuses came: everything is readable
}

const (
	// openMessageSlack bounds the frame headers of one message, beyond its
	// payload: a client cannot grow the buffer with empty fragments.
	openMessageSlack = 4096
	// minRead is the least free space a read is given.
	minRead = 4096
	// maxPooledInput keeps buffers grown by a large message out of the pool.
	maxPooledInput = 64 << 10
)

var inputBuffers = sync.Pool{New: func() any { b := make([]byte, 0, minRead); return &b }}

// space is the free end of the buffer, for the next read (fill).
func (in *clientInput) space() []byte {
	if in.buf == nil {
		in.buf = inputBuffers.Get().(*[]byte)
	}
	b := *in.buf
	if cap(b)-len(b) < minRead {
		grown := make([]byte, len(b), 2*cap(b)+minRead)
		copy(grown, b)
		*in.buf = grown
		b = grown
	}
	return b[len(b):cap(b)]
}

// fill takes n bytes read into space.
func (in *clientInput) fill(n int) { *in.buf = (*in.buf)[:len(*in.buf)+n] }

// read is gorilla's read: bytes of whole messages only.
func (in *clientInput) read(p []byte) int {
	if in.buf == nil {
		return 0
	}
	n := copy(p, (*in.buf)[in.r:in.ready])
	in.r += n
	return n
}

// compact drops what gorilla has read, and the buffer once it is empty:
// an idle connection holds none.
func (in *clientInput) compact() {
	if in.buf == nil {
		return
	}
	b := *in.buf
	n := copy(b, b[in.r:])
	*in.buf = b[:n]
	in.ready -= in.r
	in.scan -= in.r
	in.r = 0
	if n == 0 {
		if cap(b) <= maxPooledInput {
			inputBuffers.Put(in.buf)
		}
		in.buf = nil
	}
}

// controlHandler takes a ping or pong taken out of the stream, its payload
// unmasked (valid only during the call).
type controlHandler func(opcode int, payload []byte)

// follow follows the frames that came since the last call: whole messages
// become pending, pings and pongs go to control. It ends the connection
// with a readRefusal where gorilla, which needs whole messages, would come
// too late: text that is not UTF-8 (1007) however much of the message is
// still to come, a message whose frame headers pass openMessageSlack (1009).
func (in *clientInput) follow(control controlHandler) error {
	if in.buf == nil {
		return nil
	}
	for {
		b := *in.buf
		if in.broken {
			in.ready, in.scan = len(b), len(b)
			return nil
		}
		if in.payload > 0 {
			k := int(min(in.payload, int64(len(b)-in.scan)))
			if k == 0 {
				return nil
			}
			if in.text {
				p := b[in.scan : in.scan+k]
				for i := range p {
					p[i] ^= in.key[in.keyPos&3]
					in.keyPos++
				}
				if !in.utf8.check(p) {
					return errInvalidUTF8
				}
			}
			in.scan += k
			in.payload -= int64(k)
			if in.payload == 0 {
				in.frameEnd()
			}
			continue
		}
		h := b[in.scan:]
		if len(h) < 2 {
			return nil
		}
		if in.refusedHeader(h[0], h[1]) {
			in.broken = true
			in.pending++
			continue
		}
		n := clientHeaderLen(h)
		if len(h) < n {
			return nil
		}
		length := clientPayloadLen(h[:n])
		opcode := int(h[0] & 0x0f)
		if opcode >= websocket.CloseMessage {
			total := n + int(length) // at most 125: refusedHeader
			if len(h) < total {
				return nil
			}
			if opcode == websocket.CloseMessage { // gorilla's to read, and the last
				in.broken = true
				in.pending++
				continue
			}
			var payload [125]byte
			p := payload[:length]
			for i := range p {
				p[i] = h[n+i] ^ h[n-4+i&3]
			}
			control(opcode, p)
			*in.buf = append(b[:in.scan], b[in.scan+total:]...)
			continue
		}
		if int64(length) < 0 || int64(length) > in.limit-in.declared {
			in.broken = true // gorilla refuses it: 1009
			in.pending++
			continue
		}
		if int64(in.scan-in.ready+n)+int64(length) > in.limit+openMessageSlack {
			return errTooBig
		}
		if opcode != 0 { // a message begins
			in.open = true
			in.text = opcode == websocket.TextMessage && h[0]&0x40 == 0
		}
		in.declared += int64(length)
		in.fin = h[0]&0x80 != 0
		if in.text {
			copy(in.key[:], h[n-4:n])
			clear(h[n-4 : n]) // gorilla unmasks with a zero key: a no-op
			in.keyPos = 0
		}
		in.scan += n
		in.payload = int64(length)
		if in.payload == 0 {
			in.frameEnd()
		}
	}
}

// frameEnd follows the end of a data frame's payload.
func (in *clientInput) frameEnd() {
	if !in.fin {
		return
	}
	in.open, in.text, in.declared = false, false, 0
	in.utf8 = utf8Checker{}
	in.ready = in.scan
	in.pending++
}

// refusedHeader tells whether gorilla v1.5.3 refuses a frame by its first
// two bytes (its advanceFrame), with a close frame of its own.
func (in *clientInput) refusedHeader(b0, b1 byte) bool {
	rsv1, rsv23 := b0&0x40 != 0, b0&0x30 != 0
	if rsv1 && !in.deflate || rsv23 || b1&0x80 == 0 { // clients mask every frame
		return true
	}
	fin, length := b0&0x80 != 0, b1&0x7f
	switch int(b0 & 0x0f) {
	case websocket.CloseMessage, websocket.PingMessage, websocket.PongMessage:
		return length > 125 || !fin
	case websocket.TextMessage, websocket.BinaryMessage:
		return in.open
	case 0: // continuation
		return !in.open
	default:
		return true
	}
}
