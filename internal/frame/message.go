package frame

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// Marks before a payload on Pub/Sub, so that a node reads back what was
// sent: "\x00rws:<epoch>:<offset>:<payload>" is a recorded message (the
// publish script of the Redis side writes it),
// "\x00rwsb:<epoch>:<offset>:<payload>" a recorded binary one. Live messages are published as they are, except a
// binary one whose bytes are valid UTF-8, sent as "\x00rwsb:::<payload>",
// and one that starts with markPrefix itself, sent as "\x00rws:::<payload>"
// so that it is never taken for a marked one. Unmarked, a message is text
// when it is valid UTF-8 and binary otherwise: that is all redis-cli publish
// can say, and all a frame of either type needs but a binary one that is
// valid UTF-8.
const (
	markPrefix   = "\x00rws"
	RecordedMark = markPrefix + ":"
	BinaryMark   = markPrefix + "b:"
)

// Message is one message of a channel on its way to the clients: its
// payload, its place in the history when it was recorded (offset 0: live),
// its frame type, and the frames it is written as, one per kind of client,
// each made at most once and shared by every client of that kind.
type Message struct {
	Channel string
	Pos     Position
	Payload string
	// binary: it was sent as binary and marked so; unmarked, text() decides.
	Binary bool

	Frames [kinds]*Frame
}

// FrameKind is the form a client takes messages in.
type FrameKind uint8

const (
	RawFrames      FrameKind = iota // WebSocket, the payload alone
	EnvelopeFrames                  // WebSocket, redis_ws.v1 JSON envelopes
	StreamFrames                    // Server-Sent Events
	kinds
)

// Positioned tells whether clients of the kind are told their position in
// each channel before its first message.
func (k FrameKind) Positioned() bool { return k != RawFrames }

// ParseMessage reads a Redis message: recorded or live, marked binary or
// not.
func ParseMessage(ch, payload string) *Message {
	m := &Message{Channel: ch, Payload: payload}
	rest, ok := strings.CutPrefix(payload, markPrefix)
	if !ok {
		return m
	}
	rest, binary := strings.CutPrefix(rest, "b")
	rest, ok0 := strings.CutPrefix(rest, ":")
	epoch, rest, ok1 := strings.Cut(rest, ":")
	off, data, ok2 := strings.Cut(rest, ":")
	if !ok0 || !ok1 || !ok2 {
		return m // not ours: delivered as it came
	}
	if epoch == "" && off == "" {
		m.Payload, m.Binary = data, binary // a marked live message
		return m
	}
	n, err := strconv.ParseInt(off, 10, 64)
	if err != nil || n <= 0 || !protocol.ValidEpoch(epoch) {
		return m
	}
	m.Pos, m.Payload, m.Binary = Position{Epoch: epoch, Offset: n}, data, binary
	return m
}

// MarkBinary tells whether a frame must be marked binary on its way through
// Redis: it was sent as binary, and its bytes alone would make it text.
func MarkBinary(data []byte, binary bool) bool { return binary && utf8.Valid(data) }

// LiveWire is a live payload as it is published: see markPrefix.
func LiveWire(data []byte, markedBinary bool) []byte {
	switch {
	case markedBinary:
		return append([]byte(BinaryMark+"::"), data...)
	case bytes.HasPrefix(data, []byte(markPrefix)):
		return append([]byte(RecordedMark+"::"), data...)
	}
	return data
}

func (m *Message) Recorded() bool { return m.Pos.Offset > 0 }

// Text tells the frame type clients get the message in: text when it was
// not sent as binary and its payload is valid UTF-8 (a text frame always
// is; what redis-cli publish or a POST sends has no type of its own).
func (m *Message) Text() bool { return !m.Binary && utf8.ValidString(m.Payload) }

// FrameFor is the message as a client of the kind takes it.
func (m *Message) FrameFor(k FrameKind) *Frame {
	f := m.Frames[k]
	if f == nil {
		switch k {
		case EnvelopeFrames:
			f = envelopeFrame(m)
		case StreamFrames:
			f = StreamFrame(m)
		default:
			f = NewFrame(m.Payload, m.Text())
		}
		f.Msg = m
		m.Frames[k] = f
	}
	return f
}
