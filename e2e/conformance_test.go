package e2e

// WebSocket protocol conformance beyond what gorilla does by itself, with
// raw frames over a TCP socket to a real node (the Autobahn runner cannot
// be installed here): permessage-deflate offers declined when the fixed
// answer cannot honour them (RFC 7692 §7.1), invalid UTF-8 refused at the
// fragment that breaks it (RFC 6455 §8.1), a close body of 1 byte refused
// (§5.5.1), and what gorilla answers to the rest.

import (
	"encoding/binary"
	"net/http"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/chatjson"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/gorilla/websocket"
)

// Every offer gets the fixed answer or none, and frames compressed exactly
// when it was agreed, which the client then inflates.
func TestDeflateOffers(t *testing.T) {
	rs := startRedis(t)
	n := chatNode(t, rs.Port, "compress")
	base := n.BaseGoroutines(t)
	for _, tc := range []struct {
		offers []string
		agreed bool
	}{
		{[]string{"permessage-deflate"}, true},
		{[]string{"permessage-deflate; client_max_window_bits"}, true}, // what browsers send
		{[]string{"permessage-deflate; client_max_window_bits=10"}, true},
		{[]string{`permessage-deflate; client_max_window_bits="8"`}, true},
		{[]string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=15"}, true},
		{[]string{"permessage-deflate; server_max_window_bits=9"}, false},  // a window Go's flate cannot make
		{[]string{"permessage-deflate; server_max_window_bits=15"}, false}, // accepted only by naming it in the answer
		{[]string{"permessage-deflate; server_max_window_bits=9, permessage-deflate; client_max_window_bits"}, true},
		{[]string{"permessage-deflate; server_max_window_bits=10", "permessage-deflate"}, true},
		{[]string{"permessage-deflate; client_max_window_bits=7"}, false},
		{[]string{"permessage-deflate; client_max_window_bits=16"}, false},
		{[]string{"permessage-deflate; client_max_window_bits=010"}, false},
		{[]string{"permessage-deflate; server_no_context_takeover=1"}, false},
		{[]string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}, false},
		{[]string{"permessage-deflate; mystery"}, false},
		{[]string{"x-webkit-deflate-frame"}, false},
	} {
		header := http.Header{"Sec-Websocket-Extensions": tc.offers}
		c := rawDialWith(t, n, "/ws", header)
		got := c.Resp.Header.Get("Sec-WebSocket-Extensions")
		if want := map[bool]string{true: agreed, false: ""}[tc.agreed]; got != want {
			t.Errorf("offers %q: answered %q, want %q", tc.offers, got, want)
		}
		msg := chatjson.Message(2048, 3)
		publish(t, rs.Client(t), "chat", msg)
		_ = c.SetReadDeadline(time.Now().Add(wait))
		f, err := c.readFrame()
		_ = c.Close()
		if err != nil {
			t.Fatalf("offers %q: %v", tc.offers, err)
		}
		payload := string(f.payload)
		if compressed := f.first&frame.Rsv1 != 0; compressed {
			payload = testkit.InflatePayload(t, f.payload)
			if !tc.agreed {
				t.Errorf("offers %q, declined: a compressed frame", tc.offers)
			}
		} else if tc.agreed {
			t.Errorf("offers %q, agreed: an uncompressed frame of %d bytes", tc.offers, len(f.payload))
		}
		if f.opcode() != websocket.TextMessage || payload != msg {
			t.Errorf("offers %q: opcode %d, %d bytes, want the %d sent as text", tc.offers, f.opcode(), len(payload), len(msg))
		}
	}
	n.GoroutinesBackTo(t, base)
}

// Text that is not UTF-8 is refused with 1007 at the fragment, or the part
// of a frame, that breaks it, without waiting for the rest; a character
// split over fragments is fine, binary is not checked.
func TestUTF8FailFast(t *testing.T) {
	rs := startRedis(t)
	n := chatNode(t, rs.Port, "compress")
	base := n.BaseGoroutines(t)
	watcher := dialWS(t, n.WSURL("/ws"), nil)
	frag := func(fin bool, opcode byte, payload string) []byte {
		return testkit.ClientFrame(fin, 0, opcode, []byte(payload), true, -1)
	}
	const cont = 0 // continuation frame

	c := rawDial(t, n, "/ws")
	c.write(t, frag(false, websocket.TextMessage, "a\xe2"))
	c.write(t, frag(false, cont, "\x82"))
	c.write(t, frag(true, cont, "\xac b"))
	c.write(t, frag(false, websocket.BinaryMessage, "\xff"))
	c.write(t, frag(true, cont, "\xfe"))
	for _, want := range []wsMessage{{websocket.TextMessage, []byte("a€ b")}, {websocket.BinaryMessage, []byte("\xff\xfe")}} {
		if m := watcher.Next(t, wait); m.Type != want.Type || string(m.Data) != string(want.Data) {
			t.Fatalf("got %v, want %v", m, want)
		}
	}
	_ = c.Close()

	for _, tc := range []struct {
		name string
		send [][]byte // the message never ends
	}{
		{"a fragment that breaks it", [][]byte{frag(false, websocket.TextMessage, "ok "), frag(false, cont, "\xc3\x28")}},
		{"a first fragment that breaks it", [][]byte{frag(false, websocket.TextMessage, "\xed\xa0\x80")}},                                          // a surrogate
		{"a frame cut after the byte that breaks it", [][]byte{testkit.ClientFrame(true, 0, websocket.TextMessage, []byte("ok \xf8"), true, 100)}}, // 4 bytes of the 100 it declares
		{"an incomplete character that cannot be completed", [][]byte{frag(false, websocket.TextMessage, "\xf4\x90")}},                             // beyond U+10FFFF
	} {
		c := rawDial(t, n, "/ws")
		for _, b := range tc.send {
			c.write(t, b)
		}
		if got := c.CloseCode(t); got != websocket.CloseInvalidFramePayloadData {
			t.Errorf("%s: close code %d, want 1007", tc.name, got)
		}
		_ = c.Close()
	}

	// The end of a message inside a character, and compressed text.
	c = rawDial(t, n, "/ws")
	c.write(t, frag(false, websocket.TextMessage, "a"))
	c.write(t, frag(true, cont, "\xe2\x82"))
	if got := c.CloseCode(t); got != websocket.CloseInvalidFramePayloadData {
		t.Errorf("a message that ends inside a character: close code %d, want 1007", got)
	}
	zipped, _ := dialDeflate(t, n.WSURL("/ws"), true, nil, agreed)
	zipped.Send(t, websocket.TextMessage, []byte("compressed \xff"))
	if code, _ := zipped.WaitClosed(t, wait); code != websocket.CloseInvalidFramePayloadData {
		t.Errorf("compressed invalid text: closed with %d, want 1007", code)
	}

	watcher.SendText(t, "still serving")
	if m := watcher.Next(t, wait); string(m.Data) != "still serving" {
		t.Fatalf("got %v", m)
	}
	watcher.Close()
	n.GoroutinesBackTo(t, base)
}

// Close frames and frames gorilla refuses get the answers of RFC 6455.
func TestCloseAndReservedFrames(t *testing.T) {
	rs := startRedis(t)
	n := chatNode(t, rs.Port, "")
	base := n.BaseGoroutines(t)
	closeBody := func(code int, reason string) []byte {
		return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
	}
	for _, tc := range []struct {
		name  string
		frame []byte
		want  []byte // the body of the server's close frame
	}{
		{"a close body of 1 byte", testkit.ClientFrame(true, 0, websocket.CloseMessage, []byte{0x03}, true, -1), closeBody(websocket.CloseProtocolError, "close frame with a 1-byte body")},
		{"an empty close", testkit.ClientFrame(true, 0, websocket.CloseMessage, nil, true, -1), []byte{}},
		{"a close with a code and reason", testkit.ClientFrame(true, 0, websocket.CloseMessage, closeBody(websocket.CloseNormalClosure, "bye"), true, -1), closeBody(websocket.CloseNormalClosure, "")},
		{"a close with code 1005, which is never sent", testkit.ClientFrame(true, 0, websocket.CloseMessage, closeBody(websocket.CloseNoStatusReceived, ""), true, -1), closeBody(websocket.CloseProtocolError, "bad close code 1005")},
		{"a close with code 1015, which is never sent", testkit.ClientFrame(true, 0, websocket.CloseMessage, closeBody(websocket.CloseTLSHandshake, ""), true, -1), closeBody(websocket.CloseProtocolError, "bad close code 1015")},
		{"a close with an undefined code", testkit.ClientFrame(true, 0, websocket.CloseMessage, closeBody(2999, ""), true, -1), closeBody(websocket.CloseProtocolError, "bad close code 2999")},
		{"a close with a code of the applications' range", testkit.ClientFrame(true, 0, websocket.CloseMessage, closeBody(4000, "app"), true, -1), closeBody(4000, "")},
		{"a close reason that is not UTF-8", testkit.ClientFrame(true, 0, websocket.CloseMessage, closeBody(websocket.CloseNormalClosure, "\xff"), true, -1), closeBody(websocket.CloseProtocolError, "invalid utf8 payload in close frame")},
		{"RSV2 set", testkit.ClientFrame(true, 0x20, websocket.TextMessage, []byte("hi"), true, -1), nil},
		{"RSV1 set without compression agreed", testkit.ClientFrame(true, 0x40, websocket.TextMessage, []byte("hi"), true, -1), nil},
		{"a reserved opcode", testkit.ClientFrame(true, 0, 3, nil, true, -1), nil},
		{"a fragmented ping", testkit.ClientFrame(false, 0, websocket.PingMessage, nil, true, -1), nil},
		{"a continuation with nothing to continue", testkit.ClientFrame(true, 0, 0, []byte("x"), true, -1), nil},
		{"a new message inside a fragmented one", append(testkit.ClientFrame(false, 0, websocket.TextMessage, []byte("a"), true, -1), testkit.ClientFrame(true, 0, websocket.TextMessage, []byte("b"), true, -1)...), nil},
	} {
		c := rawDial(t, n, "/ws")
		c.write(t, tc.frame)
		_ = c.SetReadDeadline(time.Now().Add(wait))
		f, err := c.readFrame()
		switch {
		case err != nil:
			t.Errorf("%s: no close frame: %v", tc.name, err)
		case f.opcode() != websocket.CloseMessage:
			t.Errorf("%s: frame of opcode %d, want a close", tc.name, f.opcode())
		case tc.want == nil: // gorilla's 1002, its reason its own
			if len(f.payload) < 2 || binary.BigEndian.Uint16(f.payload) != websocket.CloseProtocolError {
				t.Errorf("%s: close body %q, want 1002", tc.name, f.payload)
			}
		case string(f.payload) != string(tc.want):
			t.Errorf("%s: close body %q, want %q", tc.name, f.payload, tc.want)
		}
		_ = c.Close()
	}
	// The node goes on serving.
	c := dialWS(t, n.WSURL("/ws"), nil)
	publish(t, rs.Client(t), "chat", "after")
	if m := c.Next(t, wait); string(m.Data) != "after" {
		t.Fatalf("got %v", m)
	}
	c.Close()
	n.GoroutinesBackTo(t, base)
}
