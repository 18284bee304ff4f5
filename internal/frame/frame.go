package frame

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Frame is one Redis message as a complete WebSocket frame on the wire,
// encoded once and shared by every client.
type Frame struct {
	Wire []byte
	Size int       // payload bytes, for the send queue limit
	At   time.Time // received from Redis, for the fan-out latency
	Msg  *Message  // the message it carries; nil for a frame of our own
	// IdLen is, in an event stream's frame, the length of its leading id
	// line (0: none).
	IdLen int

	deflateOnce sync.Once
	deflated    []byte // see compressedWire
}

// NewFrame encodes payload as one unmasked server frame (RFC 6455 §5.2),
// text or binary; a text payload must be valid UTF-8. Writers append these
// bytes to the socket themselves: gorilla's WritePreparedMessage takes a
// lock shared by every connection writing the same message, for every
// delivery.
func NewFrame(payload string, text bool) *Frame {
	opcode := byte(websocket.BinaryMessage)
	if text {
		opcode = websocket.TextMessage
	}
	n := len(payload)
	wire := appendFrame(make([]byte, 0, 10+n), Fin|opcode, payload)
	return &Frame{Wire: wire, Size: n, At: time.Now()}
}

// Fin marks the last frame of a message; ours are all single frames.
const Fin = 0x80

// appendFrame appends a server frame: its first byte, the payload's length
// in the shortest form, and the payload.
func appendFrame[P []byte | string](wire []byte, first byte, payload P) []byte {
	switch n := len(payload); {
	case n <= 125:
		wire = append(wire, first, byte(n))
	case n <= 0xffff:
		wire = append(wire, first, 126)
		wire = binary.BigEndian.AppendUint16(wire, uint16(n))
	default:
		wire = append(wire, first, 127)
		wire = binary.BigEndian.AppendUint64(wire, uint64(n))
	}
	return append(wire, payload...)
}
