package redisws

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/chatjson"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
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
	before := counterValue(t, frame.CompressedMessages)
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
	if n := counterValue(t, frame.CompressedMessages) - before; n != 3 {
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
	return inflatePayload(t, wire[frame.HeaderLen(wire):])
}

// inflatePayload inflates the payload of a compressed frame.
func inflatePayload(t *testing.T, body []byte) string {
	t.Helper()
	got, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(body), strings.NewReader("\x00\x00\xff\xff\x01\x00\x00\xff\xff"))))
	if err != nil {
		t.Fatalf("inflating: %v", err)
	}
	return string(got)
}

// Through Caddy on two nodes: clients that offer permessage-deflate and
// clients that do not, on one route with compress, get every message byte
// for byte, the first in fewer bytes on the wire; each message is
// compressed once per node however many clients take it; a route without
// compress agrees to nothing; a client's compressed message reaches Redis
// inflated; one that inflates beyond max_message_size closes its
// connection with 1009 and reaches nobody.
func TestCompression(t *testing.T) {
	rs := startRedis(t)
	nodes := startNodes(t, 2, siteCaddyfile("", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		max_message_size 64KiB
		compress
	}
	redis_ws /plain chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
	}`), rs)
	rdb := rs.Client(t)
	sub := rdb.Subscribe(context.Background(), "chat")
	defer sub.Close()
	if _, err := sub.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	fromRedis := sub.Channel()
	published := 0 // by the test: the next ones on fromRedis are the clients'
	fromClient := func() string {
		t.Helper()
		for ; published > 0; published-- {
			nextPayload(t, fromRedis)
		}
		return nextPayload(t, fromRedis)
	}

	type wire struct {
		*wsClient
		read *atomic.Int64 // bytes read off the socket
	}
	dial := func(node *caddyNode, path string, offer bool, header http.Header, want string) wire {
		t.Helper()
		c, read := dialDeflate(t, node.WSURL(path), offer, header, want)
		return wire{c, read}
	}
	zipped := []wire{dial(nodes[0], "/ws", true, nil, agreed), dial(nodes[0], "/ws", true, nil, agreed), dial(nodes[0], "/ws", true, nil, agreed)}
	plain := dial(nodes[0], "/ws", false, nil, "")
	elsewhere := []wire{
		dial(nodes[0], "/plain", true, nil, ""), // the route without compress
		dial(nodes[1], "/ws", true, nil, agreed),
		dial(nodes[1], "/ws", false, nil, ""),
		dial(nodes[1], "/ws", true, envelopeHeader(), agreed),
	}
	everyone := append(append(slices.Clone(zipped), plain), elsewhere...)

	// expect has every raw client read msgs, exactly, and the envelope
	// client read them in envelopes.
	expect := func(what string, msgs ...string) {
		t.Helper()
		for i, c := range everyone {
			for j, m := range c.Collect(t, len(msgs), wait) {
				got := string(m.Data)
				if c.Conn.Subprotocol() == protocol.Subprotocol {
					got = decodeEnvelope(t, m).data()
				}
				if got != msgs[j] {
					t.Fatalf("%s: client %d, message %d: %d bytes differ from the %d sent", what, i, j, len(got), len(msgs[j]))
				}
			}
		}
	}
	expectSubscribed(t, everyone[len(everyone)-1].wsClient, "chat")
	for _, size := range []int{1 << 10, 4 << 10} {
		msgs := make([]string, 20)
		for i := range msgs {
			msgs[i] = chatjson.Message(size, i)
		}
		z0, p0 := zipped[0].read.Load(), plain.read.Load()
		for _, m := range msgs {
			if n := rdb.Publish(context.Background(), "chat", m).Val(); n != 3 {
				t.Fatalf("PUBLISH reached %d subscribers, want 3 (2 nodes and the test)", n)
			}
			published++
		}
		expect(sizeName(size)+" JSON", msgs...)
		z, p := zipped[0].read.Load()-z0, plain.read.Load()-p0
		t.Logf("%d JSON messages of %s: %d bytes on the wire compressed, %d plain (%.0f%%)", len(msgs), sizeName(size), z, p, 100*float64(z)/float64(p))
		if z*10 > p*7 {
			t.Errorf("%s JSON: %d bytes compressed against %d plain, want at most 70%%", sizeName(size), z, p)
		}
	}
	random := make([]byte, 2000)
	_, _ = rand.Read(random)
	others := []string{"hi", string(random), chatjson.Message(60<<10, 99)}
	for _, m := range others {
		publish(t, rdb, "chat", m)
		published++
	}
	expect("short, binary and large messages", others...)

	// A client's compressed message: inflated before Redis has it.
	said := chatjson.Message(4<<10, 100)
	zipped[1].SendText(t, said)
	expect("a compressed client message", said)
	if got := fromClient(); got != said {
		t.Fatalf("Redis got %d bytes, want the %d the client sent", len(got), len(said))
	}

	// Three compressed clients on node 1, 40 + 1 + 1 compressible messages
	// ("hi" is short, the random bytes do not shrink): 42 compressions.
	if n := scrapeMetrics(t, nodes[0])["caddy_redis_ws_messages_compressed_total"]; n != 42 {
		t.Errorf("node 1 compressed %v times, want 42", n)
	}

	// A deflate bomb: 32 MiB of zeros in about 32 KiB, under the frame
	// limit, over max_message_size once inflated.
	bomb := dial(nodes[0], "/ws", true, nil, agreed)
	_ = bomb.TrySend(websocket.BinaryMessage, make([]byte, 32<<20)) // may end in the server's close
	if code, _ := bomb.WaitClosed(t, wait); code != websocket.CloseMessageTooBig {
		t.Fatalf("deflate bomb: closed with %d (%v), want 1009", code, bomb.closeDesc())
	}
	plain.SendText(t, "after the bomb")
	expect("after the bomb", "after the bomb")
	if got := fromClient(); got != "after the bomb" {
		t.Fatalf("Redis got %d bytes after the bomb, want only the next message", len(got))
	}
}

// agreed is the extension a route with compress answers an offer with.
const agreed = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// dialDeflate dials url offering permessage-deflate or not, fails the test
// unless the answer's Sec-WebSocket-Extensions is want, and counts the
// bytes the client reads off its socket.
func dialDeflate(t *testing.T, url string, offer bool, header http.Header, want string) (*wsClient, *atomic.Int64) {
	t.Helper()
	read := new(atomic.Int64)
	d := &websocket.Dialer{HandshakeTimeout: 10 * time.Second, EnableCompression: offer,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			return countingConn{c, read}, err
		}}
	c, resp, err := tryDialWSWith(t, d, url, header)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != want {
		t.Fatalf("%s, offering compression %v: Sec-WebSocket-Extensions %q, want %q", url, offer, got, want)
	}
	return c, read
}

// Compression on Sentinel and on a Cluster (sharded Pub/Sub, history in the
// channel's slot): raw and envelope clients that agreed and one that did
// not get a client's compressed message, byte for byte.
func TestCompressionOnSentinelAndCluster(t *testing.T) {
	for _, topo := range sentinelAndCluster {
		t.Run(topo.name, func(t *testing.T) {
			block, env := topo.redis(t)
			config := siteCaddyfile("", `
	redis_ws /ws chat {
		redis {
			`+block+`
		}
		history 100
		compress
	}`)
			ns := []*caddyNode{startNode(t, "node1", config, env), startNode(t, "node2", config, env)}
			sender, _ := dialDeflate(t, ns[0].WSURL("/ws"), true, nil, agreed)
			raw, _ := dialDeflate(t, ns[1].WSURL("/ws"), true, nil, agreed)
			plain, _ := dialDeflate(t, ns[1].WSURL("/ws"), false, nil, "")
			env1, _ := dialDeflate(t, ns[1].WSURL("/ws"), true, envelopeHeader(), agreed)
			expectSubscribed(t, env1, "chat")
			said := chatjson.Message(2048, 7)
			sender.SendText(t, said)
			for _, c := range []*wsClient{sender, raw, plain} {
				if m := c.Next(t, wait); string(m.Data) != said {
					t.Fatalf("%s: %d bytes differ from the %d sent", c.URL, len(m.Data), len(said))
				}
			}
			if e := nextEnvelope(t, env1); e.data() != said || e.offset() != 1 {
				t.Fatalf("envelope: offset %d, %d bytes; want offset 1 and the %d sent", e.offset(), len(e.data()), len(said))
			}
			if n := compressions(t, ns[1]); n != 2 { // the raw frame and the envelope
				t.Errorf("node 2 compressed %v times, want 2", n)
			}
		})
	}
}

// countingConn counts the bytes read off a connection.
type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
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
