package redisws

import (
	"errors"
	"io"
	"unicode/utf8"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
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
	errTooBig      = &readRefusal{protocol.CloseMessageTooBig, "message too big"}
	errInvalidUTF8 = &readRefusal{protocol.CloseInvalidPayload, "invalid UTF-8"} // RFC 6455 §8.1
	// errCloseBody: a close body is empty or holds a code (RFC 6455
	// §5.5.1); gorilla takes one byte for none (clientFrames).
	errCloseBody = &readRefusal{protocol.CloseProtocolError, "close frame with a 1-byte body"}
)

// messageReader reads a client's messages, one at a time, inflated when
// they came compressed, and no more than limit bytes of each: a small
// compressed message that would inflate beyond limit ends with errTooBig
// once limit+1 bytes are read, not after all of it. Text is checked as it
// comes (utf8Checker). One per connection, so that a read allocates nothing
// but the message.
type messageReader struct {
	limit   int64
	limited io.LimitedReader
	text    utf8Checker
}

func (mr *messageReader) read(conn *websocket.Conn) (int, []byte, error) {
	typ, r, err := conn.NextReader()
	if errors.Is(err, websocket.ErrReadLimit) {
		// gorilla has sent its 1009 already, but not for a declared
		// length beyond 2^63-1, which it refuses without a word.
		err = errTooBig
	}
	if err != nil {
		return 0, nil, err
	}
	mr.limited = io.LimitedReader{R: r, N: mr.limit + 1}
	r = &mr.limited
	if typ == websocket.TextMessage {
		mr.text = utf8Checker{r: r}
		r = &mr.text
	}
	data, err := io.ReadAll(r)
	if int64(len(data)) > mr.limit { // before what the cut at limit+1 did to the text
		err = errTooBig
	}
	return typ, data, err
}

// utf8Checker passes text through and ends it with errInvalidUTF8 at the
// read whose bytes no continuation can make UTF-8, not at the message's
// last fragment, which a client might never send; or at its end, when it
// ends inside a character.
type utf8Checker struct {
	r io.Reader
	// partial is the incomplete character at the end of the last read.
	partial [utf8.UTFMax]byte
	n       int
}

func (u *utf8Checker) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	if !u.check(p[:n]) || err == io.EOF && u.n > 0 {
		return n, errInvalidUTF8
	}
	return n, err
}

// check takes the next bytes of the text; false when they break it.
func (u *utf8Checker) check(p []byte) bool {
	if u.n > 0 { // the character the last read began
		k := copy(u.partial[u.n:], p)
		c := u.partial[:u.n+k]
		if !utf8.FullRune(c) { // still incomplete: p was all of it
			u.n += k
			return true
		}
		r, size := utf8.DecodeRune(c)
		if r == utf8.RuneError && size == 1 {
			return false
		}
		p, u.n = p[size-u.n:], 0
	}
	whole := utf8Prefix(p)
	if whole < 0 {
		return false
	}
	u.n = copy(u.partial[:], p[whole:])
	return true
}

// utf8Prefix is the length of p's prefix of whole characters: all of p, or
// all but an incomplete character at its end that more bytes may complete;
// -1 if p is not UTF-8.
func utf8Prefix(p []byte) int {
	if utf8.Valid(p) {
		return len(p)
	}
	// The last character start, at most 3 bytes back, begins an incomplete
	// character (FullRune is true for an invalid one), and all before it is
	// valid.
	for i := len(p) - 1; i >= max(0, len(p)-utf8.UTFMax+1); i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) && utf8.Valid(p[:i]) {
				return i
			}
			break
		}
	}
	return -1
}
