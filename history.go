package redisws

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
)

// History keeps the last messages of each channel in Redis, so that clients
// can resume and nodes fill their own gaps.
type History struct {
	// Messages kept per channel; required, from 1 to 100000.
	Size int `json:"size"`

	// How long a channel's messages are kept after its last message.
	// Default: 24h.
	TTL caddy.Duration `json:"ttl,omitempty"`
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

func (hc *History) ttl() time.Duration {
	if hc.TTL == 0 {
		return defaultHistoryTTL
	}
	return time.Duration(hc.TTL)
}

func (hc *History) metaTTL() time.Duration { return max(minMetaTTL, hc.ttl()) }

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

// historyKeys are the Redis keys of a channel's history: its meta hash
// (epoch and last offset) and its stream. Both carry a hash tag that puts
// them in the channel's own Cluster slot, so that one script can append
// to them and SPUBLISH on the channel: the channel itself as the tag when it
// has no braces (redis_ws:{chat}:m), the channel's own tag when it has one
// (redis_ws:{user}:{user}:inbox:m), or otherwise a short tag that hashes to
// the channel's slot.
func historyKeys(ch string) []string {
	prefix := historyPrefix(ch)
	return []string{prefix + "m", prefix + "s"}
}

// idempotencyKey holds what a publish with the Idempotency-Key key was
// recorded as, in the channel's slot.
func idempotencyKey(ch, key string) string { return historyPrefix(ch) + "i:" + key }

// historyPrefix starts the keys of ch's history: see historyKeys.
func historyPrefix(ch string) string {
	var prefix string
	switch tag, ok := hashTag(ch); {
	case !strings.ContainsAny(ch, "{}"):
		prefix = "redis_ws:{" + ch + "}:"
	case ok:
		prefix = "redis_ws:{" + tag + "}:" + ch + ":"
	default:
		prefix = "redis_ws:{" + slotTag(keySlot(ch)) + "}:" + ch + ":"
	}
	return prefix
}

// hashTag is the part of a key that Redis Cluster hashes, when the key has
// a non-empty {tag}.
func hashTag(key string) (string, bool) {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return "", false
	}
	n := strings.IndexByte(key[open+1:], '}')
	if n <= 0 {
		return "", false
	}
	return key[open+1 : open+1+n], true
}

// slotTags[slot] is a short string without braces whose slot is slot.
var slotTags = sync.OnceValue(func() []string {
	tags := make([]string, 16384)
	for left, i := len(tags), 0; left > 0; i++ {
		s := strconv.FormatInt(int64(i), 36)
		if slot := keySlot(s); tags[slot] == "" {
			tags[slot] = s
			left--
		}
	}
	return tags
})

func slotTag(slot int) string { return slotTags()[slot] }

// position is a place in a channel's history: an offset of an epoch.
type position struct {
	epoch  string
	offset int64
}

func (p position) String() string { return p.epoch + ":" + strconv.FormatInt(p.offset, 10) }

// entry is one recorded message read from a stream.
type entry struct {
	offset  int64
	payload string
	binary  bool // recorded with t = b: a binary message
}

// historyRead is what a read found: the channel's epoch and latest offset,
// and the entries asked for, in order.
type historyRead struct {
	latest  position
	entries []entry
}

// contiguousAfter reports whether the entries are every message after
// offset up to the latest one.
func (r *historyRead) contiguousAfter(offset int64) bool {
	want := offset + 1
	for _, e := range r.entries {
		if e.offset != want {
			return false
		}
		want++
	}
	return want == r.latest.offset+1
}

// readHistory reads a channel's entries after an offset (after >= 0) or its
// last n entries (after < 0), with its position; a channel without history
// gets an epoch here.
func readHistory(ctx context.Context, rdb redis.UniversalClient, ch string, after int64, last int) (*historyRead, error) {
	mode, n := "after", after
	if after < 0 {
		mode, n = "last", int64(last)
	}
	ctx, cancel := context.WithTimeout(ctx, historyReadTimeout)
	defer cancel()
	res, err := readScript.Run(ctx, rdb, historyKeys(ch), mode, n, minMetaTTL.Milliseconds()).Slice()
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
		e.payload, _ = res[i+1].(string)
		e.binary = res[i+2] == "b"
		r.entries = append(r.entries, e)
	}
	if perr != nil || r.latest.epoch == "" {
		return nil, fmt.Errorf("reading the history of %s: malformed reply: %v", ch, res)
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

// resetEpoch gives a channel a new epoch if Redis's last offset of epoch
// seen is below delivered, and returns the channel's position.
func resetEpoch(ctx context.Context, rdb redis.UniversalClient, ch string, seen position) (position, error) {
	ctx, cancel := context.WithTimeout(ctx, historyReadTimeout)
	defer cancel()
	res, err := resetScript.Run(ctx, rdb, historyKeys(ch), seen.epoch, seen.offset).StringSlice()
	if err != nil || len(res) != 2 {
		return position{}, fmt.Errorf("resetting the epoch of %s: %w", ch, err)
	}
	n, err := strconv.ParseInt(res[1], 10, 64)
	if err != nil {
		return position{}, fmt.Errorf("resetting the epoch of %s: %w", ch, err)
	}
	return position{res[0], n}, nil
}
