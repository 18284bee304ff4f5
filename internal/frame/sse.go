package frame

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// StreamFrame is a message as one event: its id for a recorded message,
// then its payload on data lines. A binary message, and text that the
// format cannot carry exactly (with a carriage return, which EventSource
// reads as a line end), is an event "binary" with the payload in base64.
func StreamFrame(m *Message) *Frame {
	b := make([]byte, 0, len(m.Payload)+32)
	if m.Recorded() {
		b = appendStreamID(b, m.Pos)
	}
	idLen := len(b)
	if m.Text() && !strings.ContainsRune(m.Payload, '\r') {
		for line := range strings.SplitSeq(m.Payload, "\n") {
			b = append(b, "data: "...)
			b = append(b, line...)
			b = append(b, '\n')
		}
	} else {
		b = append(b, "event: binary\ndata: "...)
		b = base64.StdEncoding.AppendEncode(b, []byte(m.Payload))
		b = append(b, '\n')
	}
	b = append(b, '\n')
	return &Frame{Wire: b, IdLen: idLen, Size: len(m.Payload), At: time.Now()}
}

// StreamOpening tells a stream its position in ch before its first
// message, as an event with an id and no data (EventSource keeps the id and
// fires nothing), so that even a stream that got no message yet resumes from
// there. A resume that could not be served gets an event "reset" instead,
// with a data line (EventSource drops events without one). nil when there is
// nothing to tell, or when a replay follows: its events carry their ids, and
// an id before them would skip them if the stream broke in between.
func StreamOpening(ch string, at *Position, recovered *bool, replaying bool) *Frame {
	reset := recovered != nil && !*recovered
	if at == nil || replaying && !reset {
		return nil
	}
	b := appendStreamID(nil, *at)
	idLen := len(b)
	if reset {
		data, _ := json.Marshal(protocol.Reset{Channel: ch, Epoch: at.Epoch, Offset: at.Offset})
		b = append(b, "event: reset\ndata: "...)
		b = append(b, data...)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	// msg carries the position for the ids of several channels (streamLink).
	return &Frame{Wire: b, IdLen: idLen, At: time.Now(), Msg: &Message{Channel: ch, Pos: *at}}
}

func appendStreamID(b []byte, p Position) []byte {
	b = append(b, "id: "...)
	b = p.AppendText(b)
	return append(b, '\n')
}
