package frame

import "encoding/json"

// EnvelopeProtocol is the subprotocol of clients that take every message as
// JSON with its channel and place in the history, and so can resume.
const EnvelopeProtocol = "redis_ws.v1"

// envelopeMessage is one message to an envelope client.
type envelopeMessage struct {
	Channel string  `json:"channel"`
	Offset  int64   `json:"offset,omitempty"`
	Epoch   string  `json:"epoch,omitempty"`
	Data    *string `json:"data,omitempty"`
	// encoding/json writes base64; set for a binary message, even empty.
	DataBase64 *[]byte `json:"data_base64,omitempty"`
}

// subscribedMessage tells an envelope client where a channel's messages
// start: offset is the last one before them.
type subscribedMessage struct {
	Type      string `json:"type"` // "subscribed"
	Channel   string `json:"channel"`
	Offset    *int64 `json:"offset,omitempty"`
	Epoch     string `json:"epoch,omitempty"`
	Recovered *bool  `json:"recovered,omitempty"`
}

func envelopeFrame(m *Message) *Frame {
	e := envelopeMessage{Channel: m.Channel, Offset: m.Pos.Offset, Epoch: m.Pos.Epoch}
	if m.Text() {
		e.Data = &m.Payload
	} else {
		b := []byte(m.Payload)
		e.DataBase64 = &b
	}
	return JsonFrame(e)
}

// SubscribedFrame is the first frame of a channel for an envelope client;
// at is nil without history, recovered nil when it did not ask to resume.
func SubscribedFrame(ch string, at *Position, recovered *bool) *Frame {
	s := subscribedMessage{Type: "subscribed", Channel: ch, Recovered: recovered}
	if at != nil {
		s.Offset, s.Epoch = &at.Offset, at.Epoch
	}
	return JsonFrame(s)
}

func JsonFrame(v any) *Frame {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only strings, numbers and bools
	}
	return NewFrame(string(b), true)
}
