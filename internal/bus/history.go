package bus

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

const (
	// MinMetaTTL keeps a channel's epoch and last offset at least this long
	// after its last message, longer than its entries: a client that comes
	// back after the entries expired is told that they are gone, instead of
	// finding a new epoch that could be anything.
	MinMetaTTL = 30 * 24 * time.Hour
	// historyReadTimeout bounds one read of a channel's history.
	historyReadTimeout = 5 * time.Second
)

// HistoryOptions is a route's history as the Redis side applies it: the
// config with its defaults, and the limiter of new channels.
type HistoryOptions struct {
	Size         int
	Ttl          time.Duration
	NewPerMinute int           // new_channels; -1: no limit
	NewChannels  *rate.Limiter // applies newPerMinute; nil: no limit
}

// NewChannelWait is the Retry-After, in seconds, of a message refused for
// new_channels: until the next channel may get a history.
func (o *HistoryOptions) NewChannelWait() int { return max(1, 60/o.NewPerMinute) }

func (o *HistoryOptions) MetaTTL() time.Duration { return max(MinMetaTTL, o.Ttl) }

// The Lua scripts; each keeps one channel's keys consistent in one atomic
// step (lua/*.lua say how).
var (
	//go:embed lua/publish.lua
	publishSource string
	//go:embed lua/read.lua
	readSource string
	//go:embed lua/reset.lua
	resetSource   string
	PublishScript = redis.NewScript(publishSource)
	readScript    = redis.NewScript(readSource)
	resetScript   = redis.NewScript(resetSource)
)

// Entry is one recorded message read from a stream.
type Entry struct {
	Offset  int64
	Payload string
	Binary  bool // recorded from a binary frame (field t "b")
}

// HistoryRead is what a read found: the channel's epoch and latest offset,
// and the entries asked for, in order.
type HistoryRead struct {
	Latest  frame.Position
	Entries []Entry
}

// Follows reports whether the read holds every message after p, in order,
// up to the latest: p is of the read's epoch, or is noHistory.
func (r *HistoryRead) Follows(p frame.Position) bool {
	if p != frame.NoHistory && p.Epoch != r.Latest.Epoch || p.Offset > r.Latest.Offset {
		return false
	}
	return r.runsFrom(p.Offset) && r.reachesLatest(p.Offset)
}

// runsFrom reports whether the entries are the messages right after offset,
// with no hole.
func (r *HistoryRead) runsFrom(offset int64) bool {
	for i, e := range r.Entries {
		if e.Offset != offset+1+int64(i) {
			return false
		}
	}
	return true
}

// reachesLatest reports whether the entries, read after offset, end with
// the latest message.
func (r *HistoryRead) reachesLatest(offset int64) bool {
	if n := len(r.Entries); n > 0 {
		return r.Entries[n-1].Offset == r.Latest.Offset
	}
	return offset == r.Latest.Offset
}

// readMode is what lua/read.lua reads besides the position.
type readMode string

const (
	ReadSince readMode = "since" // every entry after a position, or none
	readAfter readMode = "after" // a page of what the stream holds after a position
	ReadLast  readMode = "last"  // the newest entries
)

// HistoryQuery is one read of a channel's history: its position, and the
// entries after from (readSince, readAfter) or its last n (readLast), at
// most budget payload bytes of them.
type HistoryQuery struct {
	Mode   readMode
	From   frame.Position
	Last   int
	Budget int
}

// readHistory runs the read script: it writes nothing, and a channel
// without history has the position noHistory.
func readHistory(ctx context.Context, rdb redis.UniversalClient, ch string, q HistoryQuery) (*HistoryRead, error) {
	epoch, arg := "", strconv.Itoa(q.Last)
	if q.Mode != ReadLast {
		if q.From != frame.NoHistory {
			epoch = q.From.Epoch
		}
		// The first offset wanted; an offset is at most 2^63-1, so this
		// does not overflow.
		arg = strconv.FormatUint(uint64(q.From.Offset)+1, 10)
	}
	ctx, cancel := context.WithTimeout(ctx, historyReadTimeout)
	defer cancel()
	res, err := readScript.Run(ctx, rdb, HistoryKeys(ch), string(q.Mode), epoch, arg, q.Budget).Slice()
	if err != nil {
		return nil, fmt.Errorf("reading the history of %s: %w", ch, err)
	}
	if len(res) < 2 || (len(res)-2)%3 != 0 {
		return nil, fmt.Errorf("reading the history of %s: unexpected reply of %d values", ch, len(res))
	}
	r := &HistoryRead{Entries: make([]Entry, 0, (len(res)-2)/3)}
	var perr error
	r.Latest.Epoch, _ = res[0].(string)
	r.Latest.Offset, perr = replyInt(res[1], perr)
	for i := 2; i < len(res); i += 3 {
		var e Entry
		e.Offset, perr = replyInt(res[i], perr)
		typ, _ := res[i+1].(string)
		e.Binary = typ == "b"
		e.Payload, _ = res[i+2].(string)
		r.Entries = append(r.Entries, e)
	}
	if r.Latest.Epoch == "" {
		r.Latest = frame.NoHistory
		if len(r.Entries) > 0 {
			perr = errors.New("entries without an epoch")
		}
	}
	if perr != nil {
		return nil, fmt.Errorf("reading the history of %s: malformed reply: %w", ch, perr)
	}
	return r, nil
}

// replyInt reads an offset of a script's reply, keeping the first error.
func replyInt(v any, err error) (int64, error) {
	s, _ := v.(string)
	n, perr := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return n, err
	}
	return n, perr
}

// ResetIfBack gives a channel a new epoch when its history went back from
// delivered, the position this node delivered last: its last offset in
// that epoch is lower, or its entry at delivered holds another payload than
// the one delivered there (the stream grew past it again). It returns the
// channel's position and whether it did (lua/reset.lua). sum is the SHA1 of
// the payload delivered there, hex; "" when unknown.
func ResetIfBack(ctx context.Context, rdb redis.UniversalClient, ch string, delivered frame.Position, sum string) (frame.Position, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, historyReadTimeout)
	defer cancel()
	res, err := resetScript.Run(ctx, rdb, HistoryKeys(ch), delivered.Epoch, delivered.Offset, sum).StringSlice()
	if err == nil && len(res) != 3 {
		err = fmt.Errorf("unexpected reply %q", res)
	}
	if err != nil {
		return frame.Position{}, false, fmt.Errorf("checking the history of %s: %w", ch, err)
	}
	n, err := strconv.ParseInt(res[1], 10, 64)
	if err != nil {
		return frame.Position{}, false, fmt.Errorf("checking the history of %s: %w", ch, err)
	}
	return frame.Position{Epoch: res[0], Offset: n}, res[2] == "1", nil
}
