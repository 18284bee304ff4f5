package redisws

import (
	"strconv"
	"strings"
)

// recordedMark starts a recorded message on Pub/Sub:
// "\x00rws:<epoch>:<offset>:<payload>" (lua/publish.lua writes it). A live
// message that starts with the mark itself is sent as "\x00rws:::<payload>",
// so that it is never taken for a recorded one.
const recordedMark = "\x00rws:"

// message is one message of a channel on its way to the clients: its
// payload, its place in the history when it was recorded (offset 0: live),
// and the frames it is written as, one per kind of client, each made at
// most once and shared by every client of that kind.
type message struct {
	channel string
	pos     position
	payload string

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

// parseMessage reads a Redis message: recorded or live.
func parseMessage(ch, payload string) *message {
	m := &message{channel: ch, payload: payload}
	if !strings.HasPrefix(payload, recordedMark) {
		return m
	}
	rest := payload[len(recordedMark):]
	epoch, rest, ok1 := strings.Cut(rest, ":")
	off, data, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return m // not ours: delivered as it came
	}
	if epoch == "" && off == "" {
		m.payload = data // an escaped live message
		return m
	}
	n, err := strconv.ParseInt(off, 10, 64)
	if err != nil || n <= 0 || !validEpoch(epoch) {
		return m
	}
	m.pos, m.payload = position{epoch, n}, data
	return m
}

// escapeLive makes a live payload safe to PUBLISH: see recordedMark.
func escapeLive(payload []byte) []byte {
	if !strings.HasPrefix(string(payload), recordedMark) {
		return payload
	}
	return append([]byte(recordedMark+"::"), payload...)
}

func (m *message) recorded() bool { return m.pos.offset > 0 }

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
			f = newFrame(m.payload)
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
