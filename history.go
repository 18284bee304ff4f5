package redisws

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
	defaultHistoryTTL = 24 * time.Hour
	maxHistorySize    = 100_000
	// minMetaTTL keeps a channel's epoch and last offset at least this long
	// after its last message, longer than its entries: a client that comes
	// back after the entries expired is told that they are gone, instead of
	// finding a new epoch that could be anything.
	minMetaTTL = 30 * 24 * time.Hour
	// historyReadTimeout bounds one read of a channel's history.
	historyReadTimeout = 5 * time.Second
)

// historyOptions is a route's history as the Redis side applies it: the
// config with its defaults, and the limiter of new channels.
type historyOptions struct {
	size         int
	ttl          time.Duration
	newPerMinute int           // new_channels; -1: no limit
	newChannels  *rate.Limiter // applies newPerMinute; nil: no limit
}

func (o *historyOptions) metaTTL() time.Duration { return max(minMetaTTL, o.ttl) }

// The Lua scripts; each keeps one channel's keys consistent in one atomic
// step (lua/*.lua say how).
var (
	//go:embed lua/publish.lua
	publishSource string
	//go:embed lua/read.lua
	readSource string
	//go:embed lua/reset.lua
	resetSource   string
	publishScript = redis.NewScript(publishSource)
	readScript    = redis.NewScript(readSource)
	resetScript   = redis.NewScript(resetSource)
)

// entry is one recorded message read from a stream.
type entry struct {
	offset  int64
	payload string
	binary  bool // recorded from a binary frame (field t "b")
}

// historyRead is what a read found: the channel's epoch and latest offset,
// and the entries asked for, in order.
type historyRead struct {
	latest  frame.Position
	entries []entry
}

// follows reports whether the read holds every message after p, in order,
// up to the latest: p is of the read's epoch, or is noHistory.
func (r *historyRead) follows(p frame.Position) bool {
	if p != frame.NoHistory && p.Epoch != r.latest.Epoch || p.Offset > r.latest.Offset {
		return false
	}
	return r.runsFrom(p.Offset) && r.reachesLatest(p.Offset)
}

// runsFrom reports whether the entries are the messages right after offset,
// with no hole.
func (r *historyRead) runsFrom(offset int64) bool {
	for i, e := range r.entries {
		if e.offset != offset+1+int64(i) {
			return false
		}
	}
	return true
}

// reachesLatest reports whether the entries, read after offset, end with
// the latest message.
func (r *historyRead) reachesLatest(offset int64) bool {
	if n := len(r.entries); n > 0 {
		return r.entries[n-1].offset == r.latest.Offset
	}
	return offset == r.latest.Offset
}

// readMode is what lua/read.lua reads besides the position.
type readMode string

const (
	readSince readMode = "since" // every entry after a position, or none
	readAfter readMode = "after" // a page of what the stream holds after a position
	readLast  readMode = "last"  // the newest entries
)

// historyQuery is one read of a channel's history: its position, and the
// entries after from (readSince, readAfter) or its last n (readLast), at
// most budget payload bytes of them.
type historyQuery struct {
	mode   readMode
	from   frame.Position
	last   int
	budget int
}

// readHistory runs the read script: it writes nothing, and a channel
// without history has the position noHistory.
func readHistory(ctx context.Context, rdb redis.UniversalClient, ch string, q historyQuery) (*historyRead, error) {
	epoch, arg := "", strconv.Itoa(q.last)
	if q.mode != readLast {
		if q.from != frame.NoHistory {
			epoch = q.from.Epoch
		}
		// The first offset wanted; an offset is at most 2^63-1, so this
		// does not overflow.
		arg = strconv.FormatUint(uint64(q.from.Offset)+1, 10)
	}
	ctx, cancel := context.WithTimeout(ctx, historyReadTimeout)
	defer cancel()
	res, err := readScript.Run(ctx, rdb, historyKeys(ch), string(q.mode), epoch, arg, q.budget).Slice()
	if err != nil {
		return nil, fmt.Errorf("reading the history of %s: %w", ch, err)
	}
	if len(res) < 2 || (len(res)-2)%3 != 0 {
		return nil, fmt.Errorf("reading the history of %s: unexpected reply of %d values", ch, len(res))
	}
	r := &historyRead{entries: make([]entry, 0, (len(res)-2)/3)}
	var perr error
	r.latest.Epoch, _ = res[0].(string)
	r.latest.Offset, perr = replyInt(res[1], perr)
	for i := 2; i < len(res); i += 3 {
		var e entry
		e.offset, perr = replyInt(res[i], perr)
		typ, _ := res[i+1].(string)
		e.binary = typ == "b"
		e.payload, _ = res[i+2].(string)
		r.entries = append(r.entries, e)
	}
	if r.latest.Epoch == "" {
		r.latest = frame.NoHistory
		if len(r.entries) > 0 {
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

// resetIfBack gives a channel a new epoch when its history went back below
// delivered, the position this node delivered last, and returns the
// channel's position and whether it did (lua/reset.lua). sum is the SHA1
// of the payload delivered there, hex; "" when unknown.
func resetIfBack(ctx context.Context, rdb redis.UniversalClient, ch string, delivered frame.Position, sum string) (frame.Position, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, historyReadTimeout)
	defer cancel()
	res, err := resetScript.Run(ctx, rdb, historyKeys(ch), delivered.Epoch, delivered.Offset, sum).StringSlice()
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
