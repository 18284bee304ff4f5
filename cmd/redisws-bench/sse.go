package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// Server-Sent Events, as the redis_ws route serves them to a GET with
// Accept: text/event-stream (package protocol has the names and the id's
// format): one event per message, an optional id line (recorded messages),
// the payload on "data: " lines, a blank line to end it; a payload that is
// not UTF-8 (or holds a \r) comes as "event: binary" with its data in
// base64; ": ping" comment lines keep the stream alive; an event with an id
// and no data may come first (the stream's position).

// sseEvent is one event of a stream. Its slices point into buffers the
// reader reuses: they are valid until the next call of next.
type sseEvent struct {
	id      []byte // value of the last id line
	hasID   bool
	typ     []byte // value of the event line ("" = message)
	data    []byte // data lines joined by \n; base64-decoded for "binary"
	hasData bool
	badB64  bool // an "event: binary" whose data is not base64
}

// sseReader parses a stream incrementally. Lines end with \n (a \r before
// it is dropped); a lone \r as a line end, which the format allows but the
// route never sends, is not recognised.
type sseReader struct {
	r     *bufio.Reader
	ev    sseEvent
	idBuf []byte
	typ   []byte
	data  []byte
	dec   []byte
	long  []byte // a line longer than the bufio buffer, put together

	comments uint64 // comment lines (": ping")
	unknown  uint64 // lines of other fields (retry, anything else)
}

func newSSEReader(r io.Reader, size int) *sseReader {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < size {
		br = bufio.NewReaderSize(r, size)
	}
	return &sseReader{r: br}
}

// line returns the next line without its end. A final line without an end
// is an error: the stream was cut in the middle of an event.
func (p *sseReader) line() ([]byte, error) {
	b, err := p.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		p.long = append(p.long[:0], b...)
		for err == bufio.ErrBufferFull {
			b, err = p.r.ReadSlice('\n')
			p.long = append(p.long, b...)
		}
		b = p.long
	}
	if err != nil {
		if err == io.EOF && len(b) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	b = b[:len(b)-1]
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b, nil
}

// next returns the next event that has at least one field (id, event or
// data); comments and blank lines between events only count.
func (p *sseReader) next() (*sseEvent, error) {
	p.idBuf, p.typ, p.data = p.idBuf[:0], p.typ[:0], p.data[:0]
	ev := &p.ev
	*ev = sseEvent{}
	seen := false
	for {
		b, err := p.line()
		if err != nil {
			return nil, err
		}
		if len(b) == 0 {
			if !seen {
				continue
			}
			break
		}
		if b[0] == ':' {
			p.comments++
			continue
		}
		field, value := b, []byte(nil)
		if i := bytes.IndexByte(b, ':'); i >= 0 {
			field, value = b[:i], b[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) { // no allocation: the compiler compares in place
		case "data":
			if ev.hasData {
				p.data = append(p.data, '\n')
			}
			p.data = append(p.data, value...)
			ev.hasData = true
		case "id":
			p.idBuf = append(p.idBuf[:0], value...)
			ev.hasID = true
		case "event":
			p.typ = append(p.typ[:0], value...)
		default:
			p.unknown++
			continue
		}
		seen = true
	}
	ev.id, ev.typ, ev.data = p.idBuf, p.typ, p.data
	if string(ev.typ) == protocol.EventBinary {
		n := base64.StdEncoding.DecodedLen(len(ev.data))
		if cap(p.dec) < n {
			p.dec = make([]byte, n)
		}
		m, err := base64.StdEncoding.Decode(p.dec[:n], ev.data)
		if err != nil {
			ev.badB64 = true
		}
		ev.data = p.dec[:m]
	}
	return ev, nil
}

// idOffset is the offset at the end of an event id (ok false without one):
// a scan that allocates nothing, once per event, where
// protocol.ParseEventID would build the id's positions.
func idOffset(id []byte) (off uint64, ok bool) {
	i := bytes.LastIndexByte(id, ':')
	if i < 0 || i == len(id)-1 {
		return 0, false
	}
	return getDec(id[i+1:])
}

// httpURL is the http:// URL of a ws:// one (http:// URLs pass as they
// are): the route answers event streams and POSTs at the URL of its
// WebSocket. TLS is not supported by the tool's HTTP clients.
func httpURL(raw string) (string, error) {
	switch {
	case strings.HasPrefix(raw, "ws://"):
		return "http://" + raw[len("ws://"):], nil
	case strings.HasPrefix(raw, "http://"):
		return raw, nil
	case strings.HasPrefix(raw, "wss://"), strings.HasPrefix(raw, "https://"):
		return "", fmt.Errorf("%q: TLS is not supported by this tool's HTTP clients (SSE, post): plain http:// only", raw)
	}
	return "", fmt.Errorf("%q: not a ws:// or http:// URL", raw)
}

// sseStream is one event-stream subscription: its own TCP connection (no
// pool, no MaxConnsPerHost), an HTTP/1.1 GET written by hand, and a reader
// of the response body.
type sseStream struct {
	conn net.Conn
	body io.ReadCloser
	rd   *sseReader
}

// sseStreamEnd names how a stream ended in the close codes of a result.
type sseStreamEnd struct {
	key string
	err error
}

func (e *sseStreamEnd) Error() string { return e.key + ": " + e.err.Error() }
func (e *sseStreamEnd) Unwrap() error { return e.err }

func sseEndErr(err error) error {
	key := "io_error"
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		key = "eof"
	}
	return &sseStreamEnd{key: key, err: err}
}

// dialSSE opens a stream to rawURL (http://, loopback): it returns once the
// server answered 200 with Content-Type text/event-stream, within ctx.
func dialSSE(ctx context.Context, dialer *sourceDialer, rawURL, origin string, bufSize int) (*sseStream, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("%s: only http:// streams", rawURL)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	conn, err := dialer.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			conn.Close()
		}
	}()
	if dl, has := ctx.Deadline(); has {
		_ = conn.SetDeadline(dl)
	}
	req := &http.Request{Method: http.MethodGet, URL: u, Host: u.Host, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	var w bytes.Buffer
	fmt.Fprintf(&w, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nUser-Agent: redisws-bench\r\n", u.RequestURI(), u.Host)
	if origin != "" {
		fmt.Fprintf(&w, "Origin: %s\r\n", origin)
	}
	w.WriteString("\r\n")
	if _, err := conn.Write(w.Bytes()); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(conn, bufSize)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("event stream refused (HTTP %d)", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		return nil, fmt.Errorf("event stream answered with Content-Type %q (HTTP 200)", ct)
	}
	_ = conn.SetDeadline(time.Time{})
	ok = true
	return &sseStream{conn: conn, body: resp.Body, rd: newSSEReader(resp.Body, bufSize)}, nil
}

// close ends the stream at once (its reader gets an error).
func (s *sseStream) close() { _ = s.conn.Close() }

func closeStreams(ss []*sseStream) {
	for _, s := range ss {
		if s != nil {
			s.close()
		}
	}
}
