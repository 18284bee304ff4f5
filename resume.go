package redisws

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// resumeRequest is what a client asks of the history on its upgrade URL:
// ?since=<epoch>:<offset> (several channels: ?since=<channel>@<epoch>:<offset>,
// once per channel) or ?rewind=<n>.
type resumeRequest struct {
	since  map[string]frame.Position // by channel
	rewind int                       // messages of each channel to replay; 0: none
}

// parseResume reads since and rewind; nil when the client asks for neither.
// Its errors say why, for a 400.
func (h *Handler) parseResume(query url.Values, channels []string) (*resumeRequest, error) {
	sinces, rewinds := query["since"], query["rewind"]
	if len(sinces) == 0 && len(rewinds) == 0 {
		return nil, nil
	}
	switch {
	case h.History == nil:
		return nil, errors.New("since and rewind need the route's history, which is off")
	case len(sinces) > 0 && len(rewinds) > 0:
		return nil, errors.New("since and rewind cannot be combined")
	case len(rewinds) > 1:
		return nil, errors.New("rewind is given more than once")
	}
	req := &resumeRequest{}
	if len(rewinds) == 1 {
		n, err := strconv.Atoi(rewinds[0])
		if err != nil || n < 0 {
			return nil, fmt.Errorf("rewind %q is not a number of messages (0 or more)", rewinds[0])
		}
		req.rewind = min(n, h.History.Size)
		return req, nil
	}
	req.since = make(map[string]frame.Position, len(sinces))
	for _, s := range sinces {
		ch, p, err := parseSince(s, channels)
		if err != nil {
			return nil, err
		}
		if _, dup := req.since[ch]; dup {
			return nil, fmt.Errorf("since is given twice for channel %s", ch)
		}
		req.since[ch] = p
	}
	return req, nil
}

// parseSince reads one since value: <epoch>:<offset>, or
// <channel>@<epoch>:<offset> (required when the route has several channels).
func parseSince(s string, channels []string) (string, frame.Position, error) {
	ch, pos := "", s
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		ch, pos = s[:at], s[at+1:]
		if !slices.Contains(channels, ch) {
			return "", frame.Position{}, fmt.Errorf("since %q names channel %q, which this connection does not subscribe", s, ch)
		}
	} else if len(channels) == 1 {
		ch = channels[0]
	} else {
		return "", frame.Position{}, fmt.Errorf("since %q: this route has several channels; name one: since=<channel>@<epoch>:<offset>", s)
	}
	epoch, off, ok := strings.Cut(pos, ":")
	n, err := strconv.ParseInt(off, 10, 64)
	if !ok || !protocol.ValidEpoch(epoch) || err != nil || n < 0 {
		return "", frame.Position{}, fmt.Errorf("since %q is not <epoch>:<offset> (an epoch of [A-Za-z0-9_-] and an offset of 0 or more)", s)
	}
	return ch, frame.Position{Epoch: epoch, Offset: n}, nil
}

var (
	// errHistoryUnavailable refuses a resume that Redis cannot answer now.
	errHistoryUnavailable = errors.New("the history cannot be read now")
	errRedisDown          = errors.New("redis is down")
)

// catchUp puts at the head of c's queue, before its connection starts, what
// comes before live messages: for a positioned client (envelope, stream)
// where each channel starts (frame.OpeningFrames), and for a client that asked,
// its replay. A replay holds at most send_queue bytes of messages, all its
// channels together: a since whose messages do not fit is not recovered
// (the client reloads its state, as after a trimmed history), a rewind gets
// the newest that fit. Live messages queued since the subscription that the
// replay already holds are dropped, so there is no gap and no duplicate at
// the seam. Without resume, a history that cannot be read leaves the
// subscribed frame without a position; with it, the upgrade is refused
// (errHistoryUnavailable).
func (h *Handler) catchUp(ctx context.Context, c *fanout.Client, req *resumeRequest) error {
	down := h.broker.Outage() // no read waits out its timeout meanwhile
	budget := h.SendQueue     // payload bytes the replay may still hold
	for _, ch := range c.Channels {
		var since *frame.Position
		rewind := 0
		if req != nil {
			if p, ok := req.since[ch]; ok {
				since = &p
			}
			rewind = req.rewind
		}
		if h.History != nil && !c.Kind.Positioned() && since == nil && rewind == 0 {
			continue // nothing to say to a raw client about this channel
		}
		st, err := h.channelStart(ctx, c, ch, since, rewind, &budget, down)
		if err != nil {
			if req != nil {
				return err
			}
			st = channelStart{}
		}
		c.Prepend(ch, append(frame.OpeningFrames(c.Kind, ch, st.at, st.recovered, len(st.replay) > 0), st.replay...), st.upTo)
	}
	return nil
}

// channelStart is where a client's messages of one channel start: the
// position before them (nil: not known), whether a resume got everything
// (nil: none asked), the replay, and the offset up to which live copies are
// dropped (nil: none).
type channelStart struct {
	at, upTo  *frame.Position
	recovered *bool
	replay    []*frame.Frame
}

// channelStart reads where c starts in ch, resumed from since or with the
// last rewind messages (neither: from the latest), its replay taking at most
// *budget payload bytes. Without history, or when the history cannot be read
// (down: Redis is known out of reach), it knows no position; the error
// (errHistoryUnavailable) matters only to a client that asked to resume.
func (h *Handler) channelStart(ctx context.Context, c *fanout.Client, ch string, since *frame.Position, rewind int, budget *int, down bool) (channelStart, error) {
	if h.History == nil {
		return channelStart{}, nil
	}
	q := bus.HistoryQuery{Mode: bus.ReadLast, Budget: *budget, Last: rewind}
	if since != nil {
		q.Mode, q.From = bus.ReadSince, *since
	}
	var r *bus.HistoryRead
	err := errRedisDown
	if !down {
		r, err = h.broker.ReadForClient(ctx, ch, q)
	}
	if err != nil {
		return channelStart{}, fmt.Errorf("%w: %w", errHistoryUnavailable, err)
	}
	at := r.Latest
	st := channelStart{at: &at, upTo: &r.Latest}
	replay := r.Entries
	switch {
	case since != nil:
		ok := r.Follows(*since)
		st.recovered = &ok
		if !ok {
			replay = nil
		}
	case rewind == 0: // no replay: the position before the first queued message
		if first := c.FirstQueued(ch, at.Epoch); first > 0 && first <= at.Offset {
			at.Offset = first - 1
		}
		// What comes before its subscribed offset is not delivered again.
		st.upTo = &at
	}
	for _, e := range replay {
		m := &frame.Message{Channel: ch, Pos: frame.Position{Epoch: r.Latest.Epoch, Offset: e.Offset}, Payload: e.Payload, Binary: e.Binary}
		st.replay = append(st.replay, m.FrameFor(c.Kind))
		*budget -= len(e.Payload)
	}
	return st, nil
}
