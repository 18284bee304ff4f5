package redisws

import (
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
)

// An HTTP/1.1 event stream leaves net/http once its headers are sent, as a
// WebSocket does: its handler goroutine (whose stack holds Caddy's whole
// handler chain), net/http's buffers and its background reader would
// otherwise be kept for as long as the stream lasts, about four times what
// a WebSocket costs. The stream goes on in the chunked encoding net/http
// began it with, written like a WebSocket's frames, and one small goroutine
// waits for the client to leave. HTTP/2 streams cannot leave their handler.

// hijackStream takes r's connection from net/http once the stream's headers
// are written, or returns nil where the stream must stay a response: not
// HTTP/1.1, or a handler made the response something other than plainly
// chunked (encode's Content-Encoding, a length).
func hijackStream(w http.ResponseWriter, r *http.Request) net.Conn {
	inner := innermost(w)
	hdr := inner.Header()
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || hdr.Get("Content-Encoding") != "" ||
		hdr.Get("Content-Length") != "" || hdr.Get("Transfer-Encoding") != "" {
		return nil
	}
	rc := http.NewResponseController(inner)
	if rc.Flush() != nil { // the headers reach the client before the connection leaves net/http
		return nil
	}
	conn, brw, err := rc.Hijack()
	if err != nil {
		return nil
	}
	if brw.Reader.Buffered() > 0 { // the client sent more (a pipelined request): it gets nothing more
		_ = conn.Close()
	}
	return conn
}

// serveStreamConn waits for the client to leave: it sends nothing on a
// stream, so any byte, the end of its side or an error ends it. The
// stream also ends when the server ends it (out.end closes the connection).
func (h *Handler) serveStreamConn(c *fanout.Client, out *chunkedConn, remote string) {
	closed := h.opened(c, remote, true)
	var b [1]byte
	_, _ = out.conn.Read(b[:])
	c.Close(0, "")
	<-out.done
	closed()
}

// chunkedConn writes a hijacked stream: each batch one chunk in one write.
type chunkedConn struct {
	conn   net.Conn
	cutoff writeCutoff
	done   chan struct{} // closed by end: the connection is closed
}

func (o *chunkedConn) write(b []byte) error {
	var hex [chunkRoom]byte
	head := append(strconv.AppendUint(hex[:0], uint64(len(b)-chunkRoom), 16), '\r', '\n')
	start := chunkRoom - len(head)
	copy(b[start:], head)
	b = append(b, '\r', '\n')
	o.cutoff.deadline(fanout.WriteWait, o.conn)
	_, err := o.conn.Write(b[start:])
	return err
}

// end sends the last chunk, so the client sees the response end rather than
// cut short, and closes the connection.
func (o *chunkedConn) end() {
	o.cutoff.deadline(fanout.CloseWait, o.conn)
	_, _ = o.conn.Write(lastChunk)
	_ = o.conn.Close()
	close(o.done)
}

var lastChunk = []byte("0\r\n\r\n")

func (o *chunkedConn) cut(grace time.Duration) { o.cutoff.cut(grace, o.conn) }
