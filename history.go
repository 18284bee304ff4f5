package redisws

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// History keeps the last messages of each channel in Redis, so that clients
// can resume and nodes fill their own gaps.
type History struct {
	// Messages kept per channel; required, from 1 to 100000.
	Size int `json:"size"`

	// How long a channel's messages are kept after its last message.
	// Default: 24h.
	TTL caddy.Duration `json:"ttl,omitempty"`

	// Channels that may get a history through this route, per minute and
	// node (as many at once, then one every 60s/n): a message to a channel
	// without history yet beyond it is refused (a POST with 429, a
	// WebSocket client is closed with 1013), so that clients cannot make
	// Redis keep keys without bound. -1: no limit. Default: 60.
	NewChannels int `json:"new_channels,omitempty"`
}

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

// newChannelWait is the Retry-After, in seconds, of a message refused for
// new_channels: until the next channel may get a history.
func (o *historyOptions) newChannelWait() int { return max(1, 60/o.newPerMinute) }

// defaultNewChannels is History.NewChannels when it is not set: a channel
// with one message costs Redis about 4.6 KB for the history's ttl (its
// stream's first node) and 100 bytes for 30 days (its epoch), so one a
// second for a day, on one node, is about 400 MB.
const defaultNewChannels = 60

// options applies the defaults and makes the limiter of new channels.
func (hc *History) options() *historyOptions {
	o := &historyOptions{size: hc.Size, ttl: time.Duration(hc.TTL), newPerMinute: hc.NewChannels}
	if o.ttl == 0 {
		o.ttl = defaultHistoryTTL
	}
	if o.newPerMinute == 0 {
		o.newPerMinute = defaultNewChannels
	}
	if n := o.newPerMinute; n > 0 {
		o.newChannels = rate.NewLimiter(rate.Limit(float64(n)/60), n)
	}
	return o
}

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

// position is a place in a channel's history: an offset of an epoch.
type position struct {
	epoch  string
	offset int64
}

func (p position) String() string { return p.epoch + ":" + strconv.FormatInt(p.offset, 10) }

// noHistory is the position of a channel that has no history yet, answered
// without creating any key: epoch "0", which no epoch made by the scripts
// can be (they are the hex of Redis's TIME, 13 characters or more), and
// offset 0. Every epoch follows it from its offset 1, so a client told
// 0:0 resumes from there whatever epoch the channel gets. What this cannot
// tell: a channel that got an epoch and lost it again (Redis restarted
// without persistence) while the client was away; its next epoch then
// looks complete.
var noHistory = position{epoch: "0"}

// entry is one recorded message read from a stream.
type entry struct {
	offset  int64
	payload string
	binary  bool // recorded from a binary frame (field t "b")
}

// historyRead is what a read found: the channel's epoch and latest offset,
// and the entries asked for, in order.
type historyRead struct {
	latest  position
	entries []entry
}

// follows reports whether the read holds every message after p, in order,
// up to the latest: p is of the read's epoch, or is noHistory.
func (r *historyRead) follows(p position) bool {
	if p != noHistory && p.epoch != r.latest.epoch || p.offset > r.latest.offset {
		return false
	}
	return r.runsFrom(p.offset) && r.reachesLatest(p.offset)
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
		return r.entries[n-1].offset == r.latest.offset
	}
	return offset == r.latest.offset
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
	from   position
	last   int
	budget int
}

// readHistory runs the read script: it writes nothing, and a channel
// without history has the position noHistory.
func readHistory(ctx context.Context, rdb redis.UniversalClient, ch string, q historyQuery) (*historyRead, error) {
	epoch, arg := "", strconv.Itoa(q.last)
	if q.mode != readLast {
		if q.from != noHistory {
			epoch = q.from.epoch
		}
		// The first offset wanted; an offset is at most 2^63-1, so this
		// does not overflow.
		arg = strconv.FormatUint(uint64(q.from.offset)+1, 10)
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
	r.latest.epoch, _ = res[0].(string)
	r.latest.offset, perr = replyInt(res[1], perr)
	for i := 2; i < len(res); i += 3 {
		var e entry
		e.offset, perr = replyInt(res[i], perr)
		typ, _ := res[i+1].(string)
		e.binary = typ == "b"
		e.payload, _ = res[i+2].(string)
		r.entries = append(r.entries, e)
	}
	if r.latest.epoch == "" {
		r.latest = noHistory
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
func resetIfBack(ctx context.Context, rdb redis.UniversalClient, ch string, delivered position, sum string) (position, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, historyReadTimeout)
	defer cancel()
	res, err := resetScript.Run(ctx, rdb, historyKeys(ch), delivered.epoch, delivered.offset, sum).StringSlice()
	if err == nil && len(res) != 3 {
		err = fmt.Errorf("unexpected reply %q", res)
	}
	if err != nil {
		return position{}, false, fmt.Errorf("checking the history of %s: %w", ch, err)
	}
	n, err := strconv.ParseInt(res[1], 10, 64)
	if err != nil {
		return position{}, false, fmt.Errorf("checking the history of %s: %w", ch, err)
	}
	return position{res[0], n}, res[2] == "1", nil
}
