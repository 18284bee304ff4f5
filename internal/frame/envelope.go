package frame

import (
	"encoding/json"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// EnvelopeProtocol is the subprotocol of clients that take every message as
// JSON with its channel and place in the history, and so can resume.
const EnvelopeProtocol = protocol.Subprotocol

// envelopeFrame is m as an envelope client takes it: protocol.NewMessage,
// binary when m is not text.
func envelopeFrame(m *Message) *Frame {
	return JsonFrame(protocol.NewMessage(m.Channel, m.Payload, !m.Text(), m.Pos))
}

// SubscribedFrame is the first frame of a channel for an envelope client;
// at is nil without history, recovered nil when it did not ask to resume.
func SubscribedFrame(ch string, at *Position, recovered *bool) *Frame {
	var p Position // the zero position: none written
	if at != nil {
		p = *at
	}
	return JsonFrame(protocol.NewSubscribed(ch, p, recovered))
}

// JsonFrame is v marshalled, as a text frame.
func JsonFrame(v any) *Frame {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only strings, numbers and bools
	}
	return NewFrame(string(b), true)
}
