package redisws

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/gorilla/websocket"
)

// inputRun is what clientInput made of a stream.
type inputRun struct {
	messages int      // whole messages found
	readable []byte   // what gorilla may read
	controls []string // pings and pongs taken out, opcode and payload
	err      error
	maxHeld  int  // the most bytes the buffer held
	broken   bool // a frame gorilla refuses came
}

// feed gives clientInput the stream in reads of step bytes, gorilla reading
// each whole message as it comes (all that is readable).
func feed(stream []byte, step int, limit int64) inputRun {
	in := clientInput{limit: limit}
	var run inputRun
	control := func(opcode int, payload []byte) {
		run.controls = append(run.controls, string(rune('0'+opcode))+string(payload))
	}
	for len(stream) > 0 && run.err == nil {
		space := in.space()
		n := copy(space, stream[:min(step, len(stream))])
		stream = stream[n:]
		in.fill(n)
		run.maxHeld = max(run.maxHeld, len(*in.buf))
		run.err = in.follow(control)
		run.messages += in.pending
		in.pending = 0
		p := make([]byte, 1<<20)
		k := in.read(p)
		run.readable = append(run.readable, p[:k]...)
		in.compact()
		if run.broken = in.broken; run.broken {
			break
		}
	}
	return run
}

func TestClientInputWholeMessages(t *testing.T) {
	frame := func(fin bool, opcode byte, s string) []byte {
		return testkit.ClientFrame(fin, 0, opcode, []byte(s), true, -1)
	}
	for _, tc := range []struct {
		name     string
		stream   []byte
		messages int
		controls []string
		err      error
	}{
		{"pipelined", slices.Concat(frame(true, websocket.TextMessage, "a"), frame(true, websocket.BinaryMessage, "b"), frame(true, websocket.TextMessage, "")), 3, nil, nil},
		{"control frames between fragments", slices.Concat(frame(false, websocket.TextMessage, "frag"), frame(true, websocket.PingMessage, "p"), frame(true, websocket.PongMessage, "q"), frame(true, 0, "ment")), 1, []string{"9p", ":q"}, nil},
		{"an open message", frame(false, websocket.BinaryMessage, "not yet"), 0, nil, nil},
		{"a frame cut short", frame(true, websocket.BinaryMessage, "x")[:5], 0, nil, nil},
		{"a close after a fragment: gorilla's to read", slices.Concat(frame(false, websocket.TextMessage, "a"), frame(true, websocket.CloseMessage, "\x03")), 1, nil, nil},
		{"beyond the limit", testkit.ClientFrame(true, 0, websocket.BinaryMessage, nil, true, 101), 1, nil, nil},
		{"beyond 2^63-1", []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, 1, nil, nil},
		{"fragments beyond the limit together", slices.Concat(frame(false, websocket.BinaryMessage, string(make([]byte, 60))), frame(true, 0, string(make([]byte, 60)))), 1, nil, nil},
		{"unmasked", testkit.ClientFrame(true, 0, websocket.TextMessage, []byte("x"), false, -1), 1, nil, nil},
		{"RSV1 without compression", testkit.ClientFrame(true, 0x40, websocket.TextMessage, []byte("x"), true, -1), 1, nil, nil},
		{"a reserved opcode", frame(true, 3, ""), 1, nil, nil},
		{"a long ping", frame(true, websocket.PingMessage, string(make([]byte, 126))), 1, nil, nil},
		{"a continuation of nothing", frame(true, 0, "x"), 1, nil, nil},
		{"invalid UTF-8, the message still open", frame(false, websocket.TextMessage, "ok \xc3\x28"), 0, nil, errInvalidUTF8},
		{"empty fragments beyond the slack", slices.Concat(frame(false, websocket.BinaryMessage, ""), bytes.Repeat(frame(false, 0, ""), openMessageSlack/6+100)), 0, nil, errTooBig},
	} {
		for _, step := range []int{1, 3, 1 << 20} {
			run := feed(tc.stream, step, 100)
			if run.messages != tc.messages || !slices.Equal(run.controls, tc.controls) || !errors.Is(run.err, tc.err) {
				t.Errorf("%s, reads of %d: %d messages, controls %q, %v; want %d, %q, %v", tc.name, step, run.messages, run.controls, run.err, tc.messages, tc.controls, tc.err)
			}
		}
	}
}

// What gorilla reads of text is the message unmasked under a zero key,
// without the control frames.
func TestClientInputPassesMessages(t *testing.T) {
	stream := slices.Concat(
		testkit.ClientFrame(false, 0, websocket.TextMessage, []byte("frag"), true, -1),
		testkit.ClientFrame(true, 0, websocket.PingMessage, []byte("p"), true, -1),
		testkit.ClientFrame(true, 0, 0, []byte("ment"), true, -1),
		testkit.ClientFrame(true, 0, websocket.BinaryMessage, []byte("bin"), true, -1),
	)
	run := feed(stream, 2, 100)
	want := slices.Concat(
		testkit.ClientFrame(false, 0, websocket.TextMessage, []byte("frag"), false, -1)[:2], []byte{0, 0, 0, 0}, []byte("frag"),
		testkit.ClientFrame(true, 0, 0, []byte("ment"), false, -1)[:2], []byte{0, 0, 0, 0}, []byte("ment"),
		testkit.ClientFrame(true, 0, websocket.BinaryMessage, []byte("bin"), true, -1),
	)
	want[1] |= 0x80
	want[2+4+4+1] |= 0x80
	if !bytes.Equal(run.readable, want) {
		t.Fatalf("gorilla reads\n%q, want\n%q", run.readable, want)
	}
}

// However a client's bytes are split into reads, the same messages and
// control frames are found, and the buffer stays within its bound.
func FuzzClientInput(f *testing.F) {
	f.Add(slices.Concat(testkit.ClientFrame(false, 0, websocket.TextMessage, []byte("a\xe2"), true, -1), testkit.ClientFrame(true, 0, websocket.PingMessage, []byte("p"), true, -1), testkit.ClientFrame(true, 0, 0, []byte("\x82\xac"), true, -1)), 3)
	f.Add(testkit.ClientFrame(true, 0, websocket.BinaryMessage, nil, true, 1<<40), 1)
	f.Add(bytes.Repeat(testkit.ClientFrame(false, 0, 0, nil, true, -1), 100), 7)
	f.Fuzz(func(t *testing.T, stream []byte, step int) {
		const limit = 200
		step = 1 + abs(step)%64
		whole := feed(stream, len(stream)+1, limit)
		split := feed(stream, step, limit)
		// Past a frame gorilla refuses, everything read so far is readable.
		sameBytes := bytes.HasPrefix(whole.readable, split.readable) || bytes.HasPrefix(split.readable, whole.readable)
		if whole.broken == split.broken && !whole.broken {
			sameBytes = bytes.Equal(whole.readable, split.readable)
		}
		if whole.messages != split.messages || !slices.Equal(whole.controls, split.controls) || !sameBytes || whole.broken != split.broken || (whole.err == nil) != (split.err == nil) {
			t.Fatalf("in one read: %d messages, %q, %v; in reads of %d: %d, %q, %v", whole.messages, whole.controls, whole.err, step, split.messages, split.controls, split.err)
		}
		if split.maxHeld > limit+openMessageSlack+minRead+maxClientHeader {
			t.Fatalf("the buffer held %d bytes", split.maxHeld)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
