package redisws

// WebSocket protocol conformance beyond what gorilla does by itself, with
// raw frames over a TCP socket to a real node (the Autobahn runner cannot
// be installed here): invalid UTF-8 refused at the fragment that breaks it
// (RFC 6455 §8.1).

import (
	"testing"

	"github.com/gorilla/websocket"
)

// Text that is not UTF-8 is refused with 1007 at the fragment, or the part
// of a frame, that breaks it, without waiting for the rest; a character
// split over fragments is fine, binary is not checked.
func TestUTF8FailFast(t *testing.T) {
	rs := startRedis(t)
	n := chatNode(t, rs.Port, "compress")
	base := n.BaseGoroutines(t)
	watcher := dialWS(t, n.WSURL("/ws"), nil)
	frag := func(fin bool, opcode byte, payload string) []byte {
		return rawFrameBytes(fin, 0, opcode, []byte(payload), true, -1)
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
		{"a first fragment that breaks it", [][]byte{frag(false, websocket.TextMessage, "\xed\xa0\x80")}},                                    // a surrogate
		{"a frame cut after the byte that breaks it", [][]byte{rawFrameBytes(true, 0, websocket.TextMessage, []byte("ok \xf8"), true, 100)}}, // 4 bytes of the 100 it declares
		{"an incomplete character that cannot be completed", [][]byte{frag(false, websocket.TextMessage, "\xf4\x90")}},                       // beyond U+10FFFF
	} {
		c := rawDial(t, n, "/ws")
		for _, b := range tc.send {
			c.write(t, b)
		}
		if got := c.closeCode(t); got != websocket.CloseInvalidFramePayloadData {
			t.Errorf("%s: close code %d, want 1007", tc.name, got)
		}
		_ = c.Close()
	}

	// The end of a message inside a character, and compressed text.
	c = rawDial(t, n, "/ws")
	c.write(t, frag(false, websocket.TextMessage, "a"))
	c.write(t, frag(true, cont, "\xe2\x82"))
	if got := c.closeCode(t); got != websocket.CloseInvalidFramePayloadData {
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
