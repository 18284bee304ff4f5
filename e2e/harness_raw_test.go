package e2e

// rawConn, a hand-made WebSocket client over a TCP socket: it sends what
// real clients never would (unmasked frames, RSV bits, broken UTF-8, a
// frame cut in the middle, odd close bodies, any extension offer) and reads
// the server's frames as they are on the wire.

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/gorilla/websocket"
)

type rawConn struct {
	net.Conn
	r    *bufio.Reader
	Resp *http.Response // the handshake's answer
}

func rawDial(t *testing.T, n *caddyNode, path string) *rawConn {
	t.Helper()
	return rawDialWith(t, n, path, nil)
}

// rawDialWith upgrades with header's fields added to the handshake.
func rawDialWith(t *testing.T, n *caddyNode, path string, header http.Header) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(n.URL(""), "http://"), wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(wait))
	var extra strings.Builder
	_ = header.Write(&extra)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n", path, conn.RemoteAddr(), extra.String())
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return &rawConn{Conn: conn, r: r, Resp: resp}
}

// frame writes one frame: see rawFrameBytes.
func (c *rawConn) frame(t *testing.T, fin bool, opcode byte, payload []byte, mask bool, length int64) {
	t.Helper()
	c.write(t, testkit.ClientFrame(fin, 0, opcode, payload, mask, length))
}

func (c *rawConn) write(t *testing.T, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// serverFrame is a frame the server sent, as it came.
type serverFrame struct {
	first   byte // FIN, RSV and opcode
	payload []byte
}

func (f serverFrame) opcode() byte { return f.first & 0x0f }

// readFrame reads the server's next frame, within the connection's deadline.
func (c *rawConn) readFrame() (serverFrame, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return serverFrame{}, err
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(c.r, l[:]); err != nil {
			return serverFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(c.r, l[:]); err != nil {
			return serverFrame{}, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	if n > 1<<24 {
		return serverFrame{}, fmt.Errorf("frame of %d bytes", n)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(c.r, payload); err != nil {
		return serverFrame{}, err
	}
	return serverFrame{hdr[0], payload}, nil
}

// closeCode reads frames until the server's close frame and returns its
// code, or -1 when the connection ends without one.
func (c *rawConn) CloseCode(t *testing.T) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	for {
		f, err := c.readFrame()
		if err != nil {
			return -1
		}
		if f.opcode() == websocket.CloseMessage && len(f.payload) >= 2 {
			return int(binary.BigEndian.Uint16(f.payload))
		}
	}
}

// nextPong reads frames until the server's pong and returns its payload;
// the server's pings meanwhile go unanswered.
func (c *rawConn) nextPong(t *testing.T) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	for {
		f, err := c.readFrame()
		if err != nil {
			t.Fatalf("waiting for a pong: %v", err)
		}
		if f.opcode() == websocket.PongMessage {
			return string(f.payload)
		}
	}
}

// answerPings answers the server's pings as a client library does, for d.
func (c *rawConn) answerPings(t *testing.T, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	for {
		f, err := c.readFrame()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return
		}
		if err != nil || f.opcode() == websocket.CloseMessage {
			t.Fatalf("answering pings: frame %v, %v", f, err)
		}
		if f.opcode() == websocket.PingMessage {
			c.frame(t, true, websocket.PongMessage, f.payload, true, -1)
		}
	}
}
