package redisws

// permessage-deflate in process: the frames a compressing link writes, the
// bound on what a client's compressed message inflates to, the offers
// accepted. compress_nodes_test.go has the same through Caddy nodes.

import (
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/chatjson"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/gorilla/websocket"
)

// compressServer upgrades like the handler with compress on; every
// connection arrives on the channel with what the handshake agreed.
func compressServer(t *testing.T) (url string, accepted <-chan *wsLink) {
	t.Helper()
	conns := make(chan *wsLink, 4)
	up := websocket.Upgrader{EnableCompression: true, WriteBufferPool: &writeBuffers}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj := &hijacker{ResponseWriter: w}
		conn, err := up.Upgrade(hj, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		conns <- newWSLink(conn, hj.conn, &Compression{MinSize: 1})
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), conns
}

// A client that offers permessage-deflate and one that does not take the
// same frames, one compressed once and one plain, and read every message as
// it was sent; the server knows what its handshake agreed to.
func TestCompressedFrames(t *testing.T) {
	url, accepted := compressServer(t)
	random := make([]byte, 3000)
	_, _ = rand.Read(random)
	payloads := []string{
		"hi",                         // deflate would make it longer: sent plain
		chatjson.Message(1024, 0),    // length in 2 bytes
		chatjson.Message(100<<10, 0), // length in 8 bytes
		string(random),               // binary, incompressible: plain
		strings.Repeat("\xff", 4096), // binary, compressible
	}
	frames := make([]*frame.Frame, len(payloads))
	for i, p := range payloads {
		frames[i] = frame.NewFrame(p, utf8.ValidString(p))
	}
	before := testkit.CounterValue(t, frame.CompressedMessages)
	for _, offer := range []bool{true, true, false} {
		dialer := websocket.Dialer{EnableCompression: offer}
		client, resp, err := dialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		server := <-accepted
		defer server.End(0, "")
		agreed := resp.Header.Get("Sec-WebSocket-Extensions") != ""
		if agreed != offer || server.out.deflate != offer {
			t.Fatalf("offered %v: the response says %q, the server took it as %v", offer, resp.Header.Get("Sec-WebSocket-Extensions"), server.out.deflate)
		}
		if err := server.Send(frames, false); err != nil {
			t.Fatal(err)
		}
		for i, p := range payloads {
			_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, got, err := client.ReadMessage()
			if err != nil {
				t.Fatalf("offered %v, message %d: %v", offer, i, err)
			}
			if string(got) != p {
				t.Fatalf("offered %v, message %d: %d bytes differ from the %d sent", offer, i, len(got), len(p))
			}
		}
	}
	for i, f := range frames {
		compressed := f.CompressedWire()[0]&frame.Rsv1 != 0
		if want := i == 1 || i == 2 || i == 4; compressed != want {
			t.Errorf("message %d: compressed %v, want %v", i, compressed, want)
		}
	}
	if n := testkit.CounterValue(t, frame.CompressedMessages) - before; n != 3 {
		t.Errorf("%v compressions for 3 compressible messages sent to 2 clients, want 3", n)
	}
}

// A compressed message from a client that inflates beyond the limit ends
// the read once limit+1 bytes are out, without inflating the rest.
func TestReadMessageBoundsInflate(t *testing.T) {
	const limit = 64 << 10
	bomb := make([]byte, 32<<20) // deflates to about 32 KiB: within the frame limit
	url, accepted := compressServer(t)
	client, _, err := (&websocket.Dialer{EnableCompression: true}).Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := <-accepted
	defer server.End(0, "")
	server.conn.SetReadLimit(readLimit(limit, true))
	if err := client.WriteMessage(websocket.BinaryMessage, bomb); err != nil {
		t.Fatal(err)
	}
	if err := client.WriteMessage(websocket.TextMessage, []byte("after")); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	_, _, err = (&messageReader{limit: limit}).read(server.conn)
	runtime.ReadMemStats(&m1)
	if !errors.Is(err, errTooBig) {
		t.Fatalf("read %v, want %v", err, errTooBig)
	}
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 1<<20 {
		t.Fatalf("reading a 32 MiB message under a 64 KiB limit allocated %d bytes", alloc)
	}
}

// deflateFrame's output is raw deflate without the final 4 bytes: with them
// put back, it inflates to the payload.
func TestDeflateFrameInflates(t *testing.T) {
	payload := chatjson.Message(4096, 0)
	wire := frame.NewFrame(payload, true).CompressedWire()
	if wire[0] != frame.Fin|frame.Rsv1|websocket.TextMessage {
		t.Fatalf("first byte %#x", wire[0])
	}
	if got := inflateFrame(t, wire); got != payload {
		t.Fatalf("inflated %d bytes, want the %d sent", len(got), len(payload))
	}
	t.Logf("%d bytes of JSON in a %d-byte frame", len(payload), len(wire))
}

// inflateFrame is the payload of a compressed server frame.
func inflateFrame(t *testing.T, wire []byte) string {
	t.Helper()
	return testkit.InflatePayload(t, wire[frame.HeaderLen(wire):])
}

// Which permessage-deflate offers the fixed answer honours (RFC 7692 §7.1);
// TestDeflateOffers sends some of them to a node.
func TestAcceptableDeflate(t *testing.T) {
	for offers, want := range map[string]bool{
		"permessage-deflate":                                                         true,
		"permessage-deflate; client_max_window_bits":                                 true,
		"permessage-deflate;client_max_window_bits=8":                                true,
		"permessage-deflate; client_max_window_bits=15":                              true,
		`permessage-deflate; client_max_window_bits="9"`:                             true,
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover": true,
		"x-foo; bar=\"a,b\", permessage-deflate":                                     true, // a comma inside quotes
		"permessage-deflate; server_max_window_bits=8, permessage-deflate":           true,
		"permessage-deflate; server_max_window_bits=15":                              false,
		"permessage-deflate; server_max_window_bits":                                 false,
		"permessage-deflate; client_max_window_bits=7":                               false,
		"permessage-deflate; client_max_window_bits=16":                              false,
		"permessage-deflate; client_max_window_bits=09":                              false,
		"permessage-deflate; client_max_window_bits=+9":                              false,
		"permessage-deflate; client_max_window_bits=":                                false,
		"permessage-deflate; client_max_window_bits; client_max_window_bits=10":      false,
		"permessage-deflate; server_no_context_takeover; server_no_context_takeover": false,
		"permessage-deflate; client_no_context_takeover=true":                        false,
		"permessage-deflate; unknown":                                                false,
		"permessage-deflate;":                                                        false,
		"permessage-deflate; =9":                                                     false,
		`permessage-deflate; client_max_window_bits="9, permessage-deflate"`:         false, // one offer, a bad value
		"Permessage-Deflate":                                                         false,
		"x-webkit-deflate-frame":                                                     false,
		"":                                                                           false,
	} {
		if got := acceptableDeflate([]string{offers}); got != want {
			t.Errorf("%q: %v, want %v", offers, got, want)
		}
	}
	if !acceptableDeflate([]string{"permessage-deflate; server_max_window_bits=10", "permessage-deflate"}) {
		t.Errorf("an acceptable offer in a second header line is not found")
	}
}
