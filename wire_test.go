package redisws

import (
	"bufio"
	"encoding/binary"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/gorilla/websocket"
)

// recordingConn records every Write that reaches the socket.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (r *recordingConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.writes = append(r.writes, append([]byte(nil), p...))
	r.mu.Unlock()
	return r.Conn.Write(p)
}

func (r *recordingConn) take() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.writes
	r.writes = nil
	return w
}

// frameOpcodes splits a Write into the server frames it holds; ok is false
// unless it holds whole, unmasked frames and nothing else.
func frameOpcodes(p []byte) (ops []byte, ok bool) {
	for len(p) > 0 {
		if len(p) < 2 || p[1]&0x80 != 0 {
			return ops, false
		}
		n, hdr := int(p[1]&0x7f), 2
		switch n {
		case 126:
			if len(p) < 4 {
				return ops, false
			}
			n, hdr = int(binary.BigEndian.Uint16(p[2:])), 4
		case 127:
			if len(p) < 10 {
				return ops, false
			}
			n, hdr = int(binary.BigEndian.Uint64(p[2:])), 10
		}
		if len(p) < hdr+n {
			return ops, false
		}
		ops = append(ops, p[0]&0x0f)
		p = p[hdr+n:]
	}
	return ops, true
}

// corkConn relies on what gorilla does with the connection it is given (see
// its comment): every write of gorilla's own is one Write of whole frames,
// from any goroutine, and corked writes join the batch in order. This fails
// if a new gorilla version breaks that.
func TestGorillaWritesWholeFrames(t *testing.T) {
	type server struct {
		conn *websocket.Conn
		cork *corkConn
		rec  *recordingConn
	}
	accepted := make(chan server, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj := &recordingHijacker{hijacker: hijacker{ResponseWriter: w}}
		conn, err := (&websocket.Upgrader{}).Upgrade(hj, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		accepted <- server{conn, hj.conn, hj.rec}
	}))
	defer srv.Close()
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	s := <-accepted
	defer s.conn.Close()
	if w := s.rec.take(); len(w) != 1 || !strings.HasPrefix(string(w[0]), "HTTP/1.1 101 ") {
		t.Fatalf("handshake written in %d writes: %q", len(w), w)
	}
	serverRead := make(chan error, 1)
	go func() { // gorilla's reader answers pings and closes by itself
		for {
			if _, _, err := s.conn.ReadMessage(); err != nil {
				serverRead <- err
				return
			}
		}
	}()
	expectWrite := func(what string, want ...byte) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		var writes [][]byte
		for len(writes) == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
			writes = s.rec.take()
		}
		if len(writes) != 1 {
			t.Fatalf("%s: %d writes, want 1", what, len(writes))
		}
		if ops, ok := frameOpcodes(writes[0]); !ok || string(ops) != string(want) {
			t.Fatalf("%s: wrote frames %v (whole: %v), want %v", what, ops, ok, want)
		}
	}

	// The writer's batch: our frames and gorilla's ping, one write, in order.
	s.cork.cork()
	s.cork.appendFrames([]*frame.Frame{frame.NewFrame("a", true), frame.NewFrame(strings.Repeat("b", 200), true)}, 0)
	if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := s.cork.uncork(time.Second); err != nil {
		t.Fatal(err)
	}
	expectWrite("a corked batch", websocket.TextMessage, websocket.TextMessage, websocket.PingMessage)

	// The reader's pong, from gorilla's reading goroutine.
	if err := client.WriteControl(websocket.PingMessage, []byte("hi"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	expectWrite("the pong reply", websocket.PongMessage)

	// The reader's close reply.
	if err := client.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	expectWrite("the close reply", websocket.CloseMessage)
	<-serverRead
}

// recordingHijacker is the handler's hijacker with a recordingConn under
// its corkConn.
type recordingHijacker struct {
	hijacker
	rec *recordingConn
}

func (w *recordingHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := w.hijacker.Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.rec = &recordingConn{Conn: w.conn.Conn}
	w.conn.Conn = w.rec
	return conn, brw, nil
}

// clientFrames finds the body length of the first close frame through any
// frames before it (lengths in 7, 16 and 64 bits, payloads that look like
// frame headers), however the bytes are split into reads.
func TestClientFramesFindTheClose(t *testing.T) {
	oneByteClose := testkit.ClientFrame(true, 0, websocket.CloseMessage, []byte{3}, true, -1)
	before := slices.Concat(
		testkit.ClientFrame(true, 0, websocket.TextMessage, oneByteClose, true, -1), // not a close: a payload
		testkit.ClientFrame(false, 0, websocket.BinaryMessage, make([]byte, 200), true, -1),
		testkit.ClientFrame(true, 0, 0, make([]byte, 70000), true, -1),
		testkit.ClientFrame(true, 0, websocket.PingMessage, []byte("ping!"), true, -1),
		testkit.ClientFrame(true, 0, websocket.TextMessage, nil, true, -1),
	)
	for _, body := range [][]byte{nil, {3}, {3, 0xe8}, {3, 0xe8, 'x'}} {
		stream := slices.Concat(before, testkit.ClientFrame(true, 0, websocket.CloseMessage, body, true, -1), oneByteClose)
		for _, step := range []int{1, 3, 7, 1024, len(stream)} {
			var s clientFrames
			for p := stream; len(p) > 0; p = p[min(step, len(p)):] {
				s.follow(p[:min(step, len(p))])
			}
			if !s.closing || s.oneByteClose != (len(body) == 1) {
				t.Errorf("close body of %d bytes, reads of %d: closing %v, one byte %v", len(body), step, s.closing, s.oneByteClose)
			}
		}
	}
}
