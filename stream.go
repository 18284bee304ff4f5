package redisws

import (
	"fmt"
	"net/http"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/caddyserver/caddy/v2"
)

// serveStream serves a GET that asks for Server-Sent Events: the request's
// channels and those its query names (channel=), as an ordinary response
// that lasts until the client leaves or the server ends it (too slow,
// reload, exit, its token expired). A browser's EventSource resumes by
// itself: its Last-Event-ID is the id of the last event it got.
func (h *Handler) serveStream(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer) error {
	c, err := h.admit(w, r, repl, admission{kind: frame.StreamFrames, queryChannels: true, resume: func(channels []string) (*resumeRequest, error) {
		return h.streamResume(r, channels)
	}})
	if c == nil {
		return err
	}
	channels := c.Channels

	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // proxies in front: do not buffer it
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		h.hub.Remove(c)
		return fmt.Errorf("redis_ws: event stream cannot be flushed: %w", err)
	}
	l := &streamLink{}
	if len(channels) > 1 {
		l.channels, l.pos = channels, make(map[string]frame.Position, len(channels))
	}
	if conn := hijackStream(w, r); conn != nil {
		out := &chunkedConn{conn: conn, done: make(chan struct{})}
		l.out = out
		c.Start(l, time.Duration(h.PingInterval))
		go h.serveStreamConn(c, out, r.RemoteAddr)
		return nil
	}
	out := &responseOut{w: w, rc: rc, done: make(chan struct{})}
	l.out = out
	closed := h.opened(c, r.RemoteAddr, true)
	c.Start(l, time.Duration(h.PingInterval))
	select {
	case <-out.done:
	case <-r.Context().Done(): // the client left
		c.Close(0, "")
		<-out.done
	}
	closed()
	return nil
}

// streamResume is what a stream asks of the history: its Last-Event-ID
// when it has one (a reconnecting EventSource, whose URL may still hold
// the rewind or since it first opened with), else since or rewind. A page
// that opens a new EventSource (a fresh token in its URL) cannot set the
// header: it gives the id in the query, last_event_id=.
func (h *Handler) streamResume(r *http.Request, channels []string) (*resumeRequest, error) {
	id := r.Header.Get("Last-Event-ID")
	if id == "" {
		id = r.URL.Query().Get(lastEventIDParam)
	}
	if id == "" || h.History == nil { // without history no id was ever sent
		return h.parseResume(r.URL.Query(), channels)
	}
	cps, err := protocol.ParseEventID(id)
	if err != nil {
		return nil, fmt.Errorf("Last-Event-ID: %w", err)
	}
	req := &resumeRequest{since: make(map[string]frame.Position, len(cps))}
	for _, cp := range cps {
		if err := req.add(id, cp, channels); err != nil {
			return nil, fmt.Errorf("Last-Event-ID: %w", err)
		}
	}
	return req, nil
}

// lastEventIDParam is the query parameter that stands for Last-Event-ID
// (Mercure's lastEventID, in the snake case of since and access_token).
const lastEventIDParam = "last_event_id"

// streamLink writes a client's events to its stream: a batch is one write
// (and one flush of a response). With several channels an event's id names
// the position of each, so that Last-Event-ID resumes them all: the link
// writes it itself, before the shared event's data.
type streamLink struct {
	out      streamOut
	channels []string                  // of a stream of several channels; else nil
	pos      map[string]frame.Position // last position of each, for the ids
}

// streamOut is where a stream's bytes go: its hijacked HTTP/1.1 connection
// (chunkedConn) or, where it cannot be hijacked, the response (responseOut).
type streamOut interface {
	// write sends b[chunkRoom:], one batch; b's first chunkRoom bytes are
	// free for a chunk header.
	write(b []byte) error
	end()
	cut(grace time.Duration)
}

// chunkRoom is room for a chunk header: the size of a batch, at most 2^32-1
// bytes, in hex, and CRLF.
const chunkRoom = 8 + 2

// streamPing is a comment line: it keeps proxies and the browser from
// timing the stream out, and EventSource ignores it.
const streamPing = ": ping\n\n"

func (l *streamLink) Send(batch []*frame.Frame, ping bool) error {
	bp := corkBuffers.Get().(*[]byte)
	b := append((*bp)[:0], make([]byte, chunkRoom)...)
	for _, f := range batch {
		if l.pos != nil && f.IdLen > 0 {
			l.pos[f.Msg.Channel] = f.Msg.Pos
			b = l.appendID(b)
			b = append(b, f.Wire[f.IdLen:]...)
			continue
		}
		b = append(b, f.Wire...)
	}
	if ping {
		b = append(b, streamPing...)
	}
	var err error
	if len(b) > chunkRoom {
		err = l.out.write(b)
	}
	if cap(b) <= maxPooledBuffer {
		*bp = b[:0]
		corkBuffers.Put(bp)
	}
	return err
}

// appendID writes the id line of a stream of several channels:
// <channel>@<epoch>:<offset> for each channel with a known position,
// separated by commas, the channel names path-escaped.
func (l *streamLink) appendID(b []byte) []byte {
	b = append(b, "id: "...)
	first := true
	for _, ch := range l.channels {
		p, ok := l.pos[ch]
		if !ok {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = protocol.AppendEventID(b, protocol.ChannelPosition{Channel: ch, Position: p})
	}
	return append(b, '\n')
}

// End finishes the stream. A stream has no close code: the browser
// reconnects by itself, with its Last-Event-ID.
func (l *streamLink) End(int, string) { l.out.end() }

func (l *streamLink) Cut(grace time.Duration) { l.out.cut(grace) }

// responseOut writes a stream as an ordinary response (HTTP/2, or an
// HTTP/1.1 response that cannot be hijacked), whose handler goroutine waits
// for done.
type responseOut struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	cutoff writeCutoff
	done   chan struct{} // closed by end: the response is finished
}

func (o *responseOut) write(b []byte) error {
	o.cutoff.deadline(fanout.WriteWait, o.rc)
	_, err := o.w.Write(b[chunkRoom:])
	if err == nil {
		err = o.rc.Flush()
	}
	o.cutoff.clear(o.rc)
	return err
}

func (o *responseOut) end() { close(o.done) }

func (o *responseOut) cut(grace time.Duration) { o.cutoff.cut(grace, o.rc) }
