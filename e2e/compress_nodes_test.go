package e2e

import (
	"context"
	"crypto/rand"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/chatjson"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/gorilla/websocket"
)

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
		expect(testkit.SizeName(size)+" JSON", msgs...)
		z, p := zipped[0].read.Load()-z0, plain.read.Load()-p0
		t.Logf("%d JSON messages of %s: %d bytes on the wire compressed, %d plain (%.0f%%)", len(msgs), testkit.SizeName(size), z, p, 100*float64(z)/float64(p))
		if z*10 > p*7 {
			t.Errorf("%s JSON: %d bytes compressed against %d plain, want at most 70%%", testkit.SizeName(size), z, p)
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

// agreed is the extension a route with compress answers an offer with.
const agreed = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
