package redisws

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Marks before a payload on Pub/Sub, so that a node reads back what was
// sent: "\x00rws:<epoch>:<offset>:<payload>" is a recorded message
// (lua/publish.lua writes it), "\x00rwsb:<epoch>:<offset>:<payload>" a
// recorded binary one. Live messages are published as they are, except a
// binary one whose bytes are valid UTF-8, sent as "\x00rwsb:::<payload>",
// and one that starts with markPrefix itself, sent as "\x00rws:::<payload>"
// so that it is never taken for a marked one. Unmarked, a message is text
// when it is valid UTF-8 and binary otherwise: that is all redis-cli publish
// can say, and all a frame of either type needs but a binary one that is
// valid UTF-8.
const (
	markPrefix   = "\x00rws"
	recordedMark = markPrefix + ":"
	binaryMark   = markPrefix + "b:"
)

// message is one message of a channel on its way to the clients: its
// payload, its place in the history when it was recorded (offset 0: live),
// its frame type, and the frames it is written as, one per kind of client,
// each made at most once and shared by every client of that kind.
type message struct {
	channel string
	pos     position
	payload string
	// binary: it was sent as binary and marked so; unmarked, text() decides.
	binary bool

	frames [kinds]*frame
}

// frameKind is the form a client takes messages in.
type frameKind uint8

const (
	rawFrames      frameKind = iota // WebSocket, the payload alone
	envelopeFrames                  // WebSocket, redis_ws.v1 JSON envelopes
	streamFrames                    // Server-Sent Events
	kinds
)

// positioned tells whether clients of the kind are told their position in
// each channel before its first message.
func (k frameKind) positioned() bool { return k != rawFrames }

// parseMessage reads a Redis message: recorded or live, marked binary or
// not.
func parseMessage(ch, payload string) *message {
	m := &message{channel: ch, payload: payload}
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
		m.payload, m.binary = data, binary // a marked live message
		return m
	}
	n, err := strconv.ParseInt(off, 10, 64)
	if err != nil || n <= 0 || !validEpoch(epoch) {
		return m
	}
	m.pos, m.payload, m.binary = position{epoch, n}, data, binary
	return m
}

// markBinary tells whether a frame must be marked binary on its way through
// Redis: it was sent as binary, and its bytes alone would make it text.
func markBinary(data []byte, binary bool) bool { return binary && utf8.Valid(data) }

// liveWire is a live payload as it is published: see markPrefix.
func liveWire(data []byte, markedBinary bool) []byte {
	switch {
	case markedBinary:
		return append([]byte(binaryMark+"::"), data...)
	case bytes.HasPrefix(data, []byte(markPrefix)):
		return append([]byte(recordedMark+"::"), data...)
	}
	return data
}

func (m *message) recorded() bool { return m.pos.offset > 0 }

// text tells the frame type clients get the message in: text when it was
// not sent as binary and its payload is valid UTF-8 (a text frame always
// is; what redis-cli publish or a POST sends has no type of its own).
func (m *message) text() bool { return !m.binary && utf8.ValidString(m.payload) }

// frameFor is the message as a client of the kind takes it.
func (m *message) frameFor(k frameKind) *frame {
	f := m.frames[k]
	if f == nil {
		switch k {
		case envelopeFrames:
			f = envelopeFrame(m)
		case streamFrames:
			f = streamFrame(m)
		default:
			f = newFrame(m.payload, m.text())
		}
		f.msg = m
		m.frames[k] = f
	}
	return f
}

// validEpoch checks an epoch's characters: [A-Za-z0-9_-], not empty.
func validEpoch(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
