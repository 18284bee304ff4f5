package redisws

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/gorilla/websocket"
)

// FuzzCaddyfile: the parser never panics, every error names its line, and
// whatever it accepts also passes the checks that JSON configs get.
func FuzzCaddyfile(f *testing.F) {
	if src, err := os.ReadFile("Caddyfile.example"); err == nil {
		f.Add(string(src))
	}
	for _, seed := range []string{
		"redis_ws chat",
		"redis_ws /ws chat {\n\tredis redis://127.0.0.1:6379\n\tmax_message_size 1MiB\n}",
		"redis_ws {\n\tsubscribe room:{http.request.uri.path.1} news\n\tpublish off\n}",
		"redis_ws chat {\n\tsend_queue 64KiB\n\tping_interval 5s\n\treload_close_delay off\n}",
		"redis_ws chat {\n\torigins https://a.example *\n\trate_limit 10 20\n\tsubprotocols a b\n\tsubprotocol_optional\n\tmax_connections 5\n}",
		"redis_ws chat {\n\tpresence {\n\t\tuser {http.auth.user.id}\n\t\ttimeout 10s\n\t\tleave_delay 0\n\t\tmax_users 10\n\t}\n}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		tokens, err := caddyfile.Tokenize([]byte(input), "Testfile")
		if err != nil || len(tokens) == 0 || tokens[0].Text != "redis_ws" {
			return // lexer errors and other directives are not ours
		}
		h := new(Handler)
		if err := h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		h.setDefaults()
		if err := h.Validate(); err != nil {
			t.Fatalf("accepted by the Caddyfile parser, refused at provision: %v\n%s", err, input)
		}
	})
}

// FuzzChannelPlaceholder: a placeholder's value is used literally, never
// expanded again, and the channel is accepted exactly when it is a valid
// name; a refusal never shows the configured channel.
func FuzzChannelPlaceholder(f *testing.F) {
	for _, seed := range []string{"a", "", "{env.HOME}", "room:*", "a\x00b", "ü", "\xff", strings.Repeat("x", 300)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		repl := caddy.NewEmptyReplacer()
		repl.Set("x", value)
		ch, err := expandChannel(repl, "room:{x}")
		if err != nil {
			if value != "" && checkChannel("room:"+value) == nil {
				t.Fatalf("%q refused: %v", value, err)
			}
			if strings.Contains(err.Error(), "room:") || strings.Contains(err.Error(), "{x}") {
				t.Fatalf("%q refused with %q, which shows the configured channel", value, err)
			}
			return
		}
		if ch != "room:"+value {
			t.Fatalf("%q became %q", value, ch)
		}
		if err := checkChannel(ch); err != nil {
			t.Fatalf("%q accepted but invalid: %v", ch, err)
		}
	})
}

// FuzzNewFrame: every payload becomes one final, unmasked frame that decodes
// back to it, binary when it was sent as binary or is not UTF-8, text
// otherwise.
func FuzzNewFrame(f *testing.F) {
	for _, seed := range []string{"", "hi", strings.Repeat("x", 125), strings.Repeat("y", 126), strings.Repeat("z", 70000), "\xc3\x28", strings.Repeat("ab", 200)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		for _, sentBinary := range []bool{false, true} {
			checkRawFrame(t, payload, sentBinary)
		}
	})
}

func checkRawFrame(t *testing.T, payload string, sentBinary bool) {
	fr := (&frame.Message{Payload: payload, Binary: sentBinary}).FrameFor(frame.RawFrames)
	w := fr.Wire
	if len(w) < 2 || w[0]&0x80 == 0 || w[1]&0x80 != 0 {
		t.Fatalf("header % x: want FIN set and no mask", w[:min(len(w), 2)])
	}
	wantOp := byte(2)
	if !sentBinary && utf8.ValidString(payload) {
		wantOp = 1
	}
	if op := w[0] & 0x0f; op != wantOp {
		t.Fatalf("sent as binary %v: opcode %d, want %d", sentBinary, op, wantOp)
	}
	n, hdr := int(w[1]&0x7f), 2
	switch n {
	case 126:
		n, hdr = int(binary.BigEndian.Uint16(w[2:])), 4
	case 127:
		n, hdr = int(binary.BigEndian.Uint64(w[2:])), 10
	}
	if n != len(payload) || string(w[hdr:]) != payload || fr.Size != len(payload) {
		t.Fatalf("decoded length %d and %d bytes, want %d", n, len(w)-hdr, len(payload))
	}
	// Compressed: shorter and inflating to the payload, or the frame itself.
	switch z := fr.CompressedWire(); {
	case z[0]&frame.Rsv1 == 0:
		if string(z) != string(w) {
			t.Fatalf("uncompressed form differs from the frame")
		}
	case len(z) >= len(w) || z[0] != w[0]|frame.Rsv1:
		t.Fatalf("compressed frame of %d bytes, first byte %#x, for a %d-byte frame, first byte %#x", len(z), z[0], len(w), w[0])
	case inflateFrame(t, z) != payload:
		t.Fatalf("compressed frame does not inflate to the payload")
	}
}

// A resume query, whatever it holds, is refused with an error or gives
// valid positions of the route's channels; it never panics.
func FuzzResumeQuery(f *testing.F) {
	for _, s := range []string{"since=e:1", "rewind=3", "since=chat@e:0&since=news@x:2", "since=e:1&rewind=1", "since=@:", "rewind=99999999999999999999"} {
		f.Add(s)
	}
	h := &Handler{Subscribe: []string{"chat", "news"}, Publish: "chat", History: &History{Size: 100}}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		req, err := h.parseResume(q, h.Subscribe)
		if err != nil || req == nil {
			return
		}
		if req.rewind < 0 || req.rewind > h.History.Size {
			t.Fatalf("%q: rewind %d", raw, req.rewind)
		}
		for ch, p := range req.since {
			if !slices.Contains(h.Subscribe, ch) || !protocol.ValidEpoch(p.Epoch) || p.Offset < 0 {
				t.Fatalf("%q: since %s %v", raw, ch, p)
			}
		}
	})
}

// Any Redis payload is delivered: a recorded one as its payload with a
// valid position, anything else as it came; what a node publishes reads
// back as what it sent, of the type it was sent as.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{"hi", "\x00rws:e:1:hi", "\x00rws:::x", "\x00rws:e:0:", "\x00rws", "\x00rwsb:::", "\x00rwsb:e:2:\xff", "\x00rwsbb:::"} {
		f.Add(s, "e1", int64(3))
	}
	f.Fuzz(func(t *testing.T, payload, epoch string, offset int64) {
		m := frame.ParseMessage("chat", payload)
		switch {
		case m.Recorded():
			if !protocol.ValidEpoch(m.Pos.Epoch) || !strings.HasSuffix(payload, ":"+m.Payload) {
				t.Fatalf("%q: read as %v %q", payload, m.Pos, m.Payload)
			}
		case m.Payload != payload && !strings.HasPrefix(payload, frame.RecordedMark+"::") && !strings.HasPrefix(payload, frame.BinaryMark+"::"):
			t.Fatalf("live %q delivered as %q", payload, m.Payload)
		case m.Payload == payload && m.Binary:
			t.Fatalf("unmarked %q read as marked binary", payload)
		}
		for _, sentBinary := range []bool{false, true} {
			live := frame.ParseMessage("chat", string(frame.LiveWire([]byte(payload), frame.MarkBinary([]byte(payload), sentBinary))))
			if live.Recorded() || live.Payload != payload || live.Text() != (!sentBinary && utf8.ValidString(payload)) {
				t.Fatalf("live %q sent as binary %v read back as %v %q, text %v", payload, sentBinary, live.Pos, live.Payload, live.Text())
			}
		}
		if protocol.ValidEpoch(epoch) && offset > 0 {
			for mark, binary := range map[string]bool{frame.RecordedMark: false, frame.BinaryMark: true} {
				rec := frame.ParseMessage("chat", mark+frame.Position{Epoch: epoch, Offset: offset}.String()+":"+payload)
				if rec.Pos != (frame.Position{Epoch: epoch, Offset: offset}) || rec.Payload != payload || rec.Binary != binary {
					t.Fatalf("recorded %s %q (binary %v) read back as %v %q (binary %v)", frame.Position{Epoch: epoch, Offset: offset}, payload, binary, rec.Pos, rec.Payload, rec.Binary)
				}
			}
		}
	})
}

// FuzzStreamFrame: any payload, written as an event, reads back exactly as
// EventSource parses it: as the data of a message event, or base64 in an
// event binary, which a binary message always is; and the id is the
// message's position.
func FuzzStreamFrame(f *testing.F) {
	for _, seed := range []string{"", "hi", "a\nb", "a\r\nb", "\n\n", ": not a comment", "data: x", "\xff\x00", "é\n"} {
		f.Add(seed, int64(3), false)
		f.Add(seed, int64(0), true)
	}
	f.Fuzz(func(t *testing.T, payload string, offset int64, sentBinary bool) {
		m := &frame.Message{Payload: payload, Binary: sentBinary}
		if offset > 0 {
			m.Pos = frame.Position{Epoch: "e1", Offset: offset}
		}
		typ, data, id, events := parseEvents(string(frame.StreamFrame(m).Wire))
		if events != 1 {
			t.Fatalf("%q: %d events", payload, events)
		}
		wantID := ""
		if offset > 0 {
			wantID = m.Pos.String()
		}
		if id != wantID {
			t.Fatalf("%q: id %q, want %q", payload, id, wantID)
		}
		switch typ {
		case "message":
			if data != payload || sentBinary {
				t.Fatalf("%q (binary %v) read back as %q", payload, sentBinary, data)
			}
		case "binary":
			b, err := base64.StdEncoding.DecodeString(data)
			if err != nil || string(b) != payload || !sentBinary && utf8.ValidString(payload) && !strings.Contains(payload, "\r") {
				t.Fatalf("%q as binary %q (%v)", payload, data, err)
			}
		default:
			t.Fatalf("%q: event type %q", payload, typ)
		}
	})
}

// parseEvents reads a stream as the HTML standard's EventSource does
// (lines end at CR, LF or CRLF) and returns its last event and the count.
func parseEvents(stream string) (typ, data, id string, events int) {
	stream = strings.ReplaceAll(stream, "\r\n", "\n")
	stream = strings.ReplaceAll(stream, "\r", "\n")
	var buf, evType string
	for line := range strings.SplitSeq(strings.TrimSuffix(stream, "\n"), "\n") {
		if line == "" {
			if buf != "" {
				typ, data = cmp.Or(evType, "message"), strings.TrimSuffix(buf, "\n")
				events++
			}
			buf, evType = "", ""
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "data":
			buf += value + "\n"
		case "event":
			evType = value
		case "id":
			id = value
		}
	}
	return typ, data, id, events
}

// FuzzHandshake: handshakeRefusal refuses exactly the upgrades that
// gorilla's Upgrader.Upgrade refuses before it takes the connection over,
// with the same status; gorilla is the judge. An HTTP/1.x request that
// gorilla lets through gets as far as the hijack (which a recorder cannot
// do); any other protocol cannot be hijacked: gorilla's 500 is our 400.
func FuzzHandshake(f *testing.F) {
	key := "dGhlIHNhbXBsZSBub25jZQ=="
	for _, s := range []struct {
		method, versions, key string
		major                 int
	}{
		{"GET", "13", key, 1}, {"PUT", "13", key, 1}, {"get", "13", key, 1}, {"GET", "8", key, 1},
		{"GET", "8, 13", key, 1}, {"GET", "x;y, 13", key, 1}, {"GET", " 13 ,", key, 1}, {"GET", "8\n13", key, 1},
		{"GET", "13;x", key, 1}, {"GET", "", key, 1}, {"GET", "13", "", 1}, {"GET", "13", "short", 1},
		{"GET", "13", "dGhlIHNhbXBsZSBub25jZQ", 1}, {"GET", "13", key + "==", 1}, {"GET", "13", key, 2}, {"GET", "13", key, 3},
	} {
		f.Add(s.method, s.versions, s.key, s.major)
	}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	f.Fuzz(func(t *testing.T, method, versions, key string, major int) {
		r := &http.Request{Method: method, ProtoMajor: major, Proto: "HTTP/" + strconv.Itoa(major), Header: http.Header{}, URL: &url.URL{Path: "/"}}
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		for v := range strings.SplitSeq(versions, "\n") {
			r.Header.Add("Sec-WebSocket-Version", v)
		}
		r.Header.Set("Sec-WebSocket-Key", key)
		w := httptest.NewRecorder()
		_, err := up.Upgrade(w, r, nil)
		want := w.Code
		if err != nil && strings.Contains(err.Error(), "http.Hijacker") { // every check passed
			want = 0
			if major != 1 {
				want = http.StatusBadRequest
			}
		}
		if got, reason := handshakeRefusal(r); got != want {
			t.Fatalf("%s, versions %q, key %q, HTTP/%d: %d (%s), gorilla %d (%v)", method, versions, key, major, got, reason, want, err)
		}
	})
}
