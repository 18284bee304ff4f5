package redisws

import (
	"io"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// readRefusal is what a client sent that ends its connection with a close
// code, past what gorilla refuses by itself.
type readRefusal struct {
	code   int
	reason string
}

func (e *readRefusal) Error() string { return e.reason }

var (
	errTooBig      = &readRefusal{websocket.CloseMessageTooBig, "message too big"}
	errInvalidUTF8 = &readRefusal{websocket.CloseInvalidFramePayloadData, "invalid UTF-8"} // RFC 6455 §8.1
)

// readMessage reads the client's next message, inflated when it came
// compressed, and no more than limit bytes of it: a small compressed
// message that would inflate beyond limit ends with errTooBig once limit+1
// bytes are read, not after all of it. A text message is checked as it
// comes: it ends with errInvalidUTF8 at the read that breaks it, not at its
// last fragment, which a client might never send.
func readMessage(conn *websocket.Conn, limit int64) (int, []byte, error) {
	typ, r, err := conn.NextReader()
	if err != nil {
		return 0, nil, err
	}
	data := make([]byte, 0, 512)
	valid := 0 // data[:valid] is whole runes of UTF-8
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)] // let append pick the growth
		}
		room := cap(data) - len(data)
		if left := limit + 1 - int64(len(data)); left < int64(room) {
			room = int(left)
		}
		n, err := r.Read(data[len(data) : len(data)+room])
		data = data[:len(data)+n]
		if int64(len(data)) > limit {
			return typ, data, errTooBig
		}
		if typ == websocket.TextMessage {
			if valid = utf8Prefix(data, valid); valid < 0 {
				return typ, data, errInvalidUTF8
			}
		}
		switch {
		case err == io.EOF && typ == websocket.TextMessage && valid < len(data):
			return typ, data, errInvalidUTF8 // it ends inside a rune
		case err == io.EOF:
			return typ, data, nil
		case err != nil:
			return typ, data, err
		}
	}
}

// utf8Prefix checks p from valid, the length of its prefix known to be
// whole runes, and returns the new one: all of p, or all but an incomplete
// rune at its end that more bytes may complete; -1 if p is not UTF-8.
func utf8Prefix(p []byte, valid int) int {
	if utf8.Valid(p[valid:]) {
		return len(p)
	}
	// The last rune start, at most 3 bytes back, begins an incomplete rune
	// (FullRune is true for an invalid one), and all before it is valid.
	for i := len(p) - 1; i >= max(valid, len(p)-3); i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) && utf8.Valid(p[valid:i]) {
				return i
			}
			break
		}
	}
	return -1
}
