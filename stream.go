package redisws

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// serveStream serves a GET that asks for Server-Sent Events: the request's
// channels, as an ordinary response that lasts until the client leaves or
// the server ends it (too slow, reload, exit). A browser's EventSource
// resumes by itself: its Last-Event-ID is the id of the last event it got.
func (h *Handler) serveStream(w http.ResponseWriter, r *http.Request) error {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	channels, _, err := h.resolve(repl)
	if err != nil {
		return refuse(w, http.StatusBadRequest, err.Error())
	}
	resume, err := h.streamResume(r, channels)
	if err != nil {
		return refuse(w, http.StatusBadRequest, err.Error())
	}
	c := newClient(channels, "", streamFrames, h.SendQueue, h.metrics)
	if c.user, err = h.presenceUser(repl); err != nil {
		return refuse(w, http.StatusBadRequest, err.Error())
	}
	if !h.hub.add(c) {
		w.Header().Set("Retry-After", retryAfter)
		return refuse(w, http.StatusServiceUnavailable, "too many connections; try again later")
	}
	defer h.hub.remove(c)
	h.broker.waitReady(r.Context(), channels)
	if err := h.catchUp(r.Context(), c, resume); err != nil {
		h.logger.Debug("resume refused", zap.Error(err))
		w.Header().Set("Retry-After", retryAfter)
		return refuse(w, http.StatusServiceUnavailable, "the history cannot be read now; try again later")
	}

	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // proxies in front: do not buffer it
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return fmt.Errorf("redis_ws: event stream cannot be flushed: %w", err)
	}
	l := &streamLink{w: w, rc: rc, done: make(chan struct{})}
	if len(channels) > 1 {
		l.channels, l.pos = channels, make(map[string]position, len(channels))
	}
	start := time.Now()
	h.metrics.connections.Inc()
	h.metrics.streams.Inc()
	c.start(l, time.Duration(h.PingInterval))
	select {
	case <-l.done:
	case <-r.Context().Done(): // the client left
		c.close(0, "")
		<-l.done
	}
	h.metrics.streams.Dec()
	h.metrics.connections.Dec()
	if ce := h.logger.Check(zapcore.DebugLevel, "event stream closed"); ce != nil {
		ce.Write(zap.String("remote", r.RemoteAddr), zap.Strings("channels", c.channels),
			zap.Duration("duration", time.Since(start)), zap.Int("close_code", c.closeCode()))
	}
	return nil
}

// streamResume is what a stream asks of the history: its Last-Event-ID
// when it has one (a reconnecting EventSource, whose URL may still hold
// the rewind or since it first opened with), else since or rewind.
func (h *Handler) streamResume(r *http.Request, channels []string) (*resumeRequest, error) {
	id := r.Header.Get("Last-Event-ID")
	if id == "" || h.History == nil { // without history no id was ever sent
		return h.parseResume(r.URL.Query(), channels)
	}
	var since []string
	for part := range strings.SplitSeq(id, ",") {
		if at := strings.LastIndexByte(part, '@'); at >= 0 {
			ch, err := url.PathUnescape(part[:at])
			if err != nil {
				return nil, fmt.Errorf("Last-Event-ID %q is not an id this route sent", id)
			}
			part = ch + part[at:]
		}
		since = append(since, part)
	}
	req, err := h.parseResume(url.Values{"since": since}, channels)
	if err != nil {
		return nil, fmt.Errorf("Last-Event-ID: %w", err)
	}
	return req, nil
}

// streamFrame is a message as one event: its id for a recorded message,
// then its payload on data lines. A binary message, and text that the
// format cannot carry exactly (with a carriage return, which EventSource
// reads as a line end), is an event "binary" with the payload in base64.
func streamFrame(m *message) *frame {
	b := make([]byte, 0, len(m.payload)+32)
	if m.recorded() {
		b = appendStreamID(b, m.pos)
	}
	idLen := len(b)
	if m.text() && !strings.ContainsRune(m.payload, '\r') {
		for line := range strings.SplitSeq(m.payload, "\n") {
			b = append(b, "data: "...)
			b = append(b, line...)
			b = append(b, '\n')
		}
	} else {
		b = append(b, "event: binary\ndata: "...)
		b = base64.StdEncoding.AppendEncode(b, []byte(m.payload))
		b = append(b, '\n')
	}
	b = append(b, '\n')
	return &frame{wire: b, idLen: idLen, size: len(m.payload), at: time.Now()}
}

// streamReset is the data of a reset event: where the stream goes on.
type streamReset struct {
	Channel string `json:"channel"`
	Epoch   string `json:"epoch"`
	Offset  int64  `json:"offset"`
}

// streamOpening tells a stream its position in ch before its first
// message, as an event with an id and no data (EventSource keeps the id and
// fires nothing), so that even a stream that got no message yet resumes from
// there. A resume that could not be served gets an event "reset" instead,
// with a data line (EventSource drops events without one). nil when there is
// nothing to tell, or when a replay follows: its events carry their ids, and
// an id before them would skip them if the stream broke in between.
func streamOpening(ch string, at *position, recovered *bool, replaying bool) *frame {
	reset := recovered != nil && !*recovered
	if at == nil || replaying && !reset {
		return nil
	}
	b := appendStreamID(nil, *at)
	idLen := len(b)
	if reset {
		data, _ := json.Marshal(streamReset{ch, at.epoch, at.offset})
		b = append(b, "event: reset\ndata: "...)
		b = append(b, data...)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	// msg carries the position for the ids of several channels (streamLink).
	return &frame{wire: b, idLen: idLen, at: time.Now(), msg: &message{channel: ch, pos: *at}}
}

func appendStreamID(b []byte, p position) []byte {
	b = append(b, "id: "...)
	b = append(b, p.epoch...)
	b = append(b, ':')
	b = strconv.AppendInt(b, p.offset, 10)
	return append(b, '\n')
}

// streamLink writes a client's events to its response: a batch is one write
// and one flush. With several channels an event's id names the position of
// each, so that Last-Event-ID resumes them all: the link writes it itself,
// before the shared event's data.
type streamLink struct {
	w        http.ResponseWriter
	rc       *http.ResponseController
	channels []string            // of a stream of several channels; else nil
	pos      map[string]position // last position of each, for the ids
	cutoff   writeCutoff
	done     chan struct{} // closed by end: the response is finished
}

// streamPing is a comment line: it keeps proxies and the browser from
// timing the stream out, and EventSource ignores it.
const streamPing = ": ping\n\n"

func (l *streamLink) send(batch []*frame, ping bool) error {
	bp := corkBuffers.Get().(*[]byte)
	b := (*bp)[:0]
	for _, f := range batch {
		if l.pos != nil && f.idLen > 0 {
			l.pos[f.msg.channel] = f.msg.pos
			b = l.appendID(b)
			b = append(b, f.wire[f.idLen:]...)
			continue
		}
		b = append(b, f.wire...)
	}
	if ping {
		b = append(b, streamPing...)
	}
	l.cutoff.deadline(writeWait, l.rc)
	_, err := l.w.Write(b)
	if err == nil {
		err = l.rc.Flush()
	}
	l.cutoff.clear(l.rc)
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
		b = append(b, url.PathEscape(ch)...)
		b = append(b, '@')
		b = append(b, p.epoch...)
		b = append(b, ':')
		b = strconv.AppendInt(b, p.offset, 10)
	}
	return append(b, '\n')
}

// end finishes the response: serveStream returns. A stream has no close
// code: the browser reconnects by itself, with its Last-Event-ID.
func (l *streamLink) end(int, string) { close(l.done) }

func (l *streamLink) cut(grace time.Duration) { l.cutoff.cut(grace, l.rc) }
