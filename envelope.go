package redisws

import "encoding/json"

// envelopeProtocol is the subprotocol of clients that take every message as
// JSON with its channel and place in the history, and so can resume.
const envelopeProtocol = "redis_ws.v1"

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

func envelopeFrame(m *message) *frame {
	e := envelopeMessage{Channel: m.channel, Offset: m.pos.offset, Epoch: m.pos.epoch}
	if m.text() {
		e.Data = &m.payload
	} else {
		b := []byte(m.payload)
		e.DataBase64 = &b
	}
	return jsonFrame(e)
}

// subscribedFrame is the first frame of a channel for an envelope client;
// at is nil without history, recovered nil when it did not ask to resume.
func subscribedFrame(ch string, at *position, recovered *bool) *frame {
	s := subscribedMessage{Type: "subscribed", Channel: ch, Recovered: recovered}
	if at != nil {
		s.Offset, s.Epoch = &at.offset, at.epoch
	}
	return jsonFrame(s)
}

func jsonFrame(v any) *frame {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only strings, numbers and bools
	}
	return newFrame(string(b), true)
}
