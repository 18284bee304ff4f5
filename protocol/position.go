package protocol

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Position is a place in a channel's history: the offset of a recorded
// message in an epoch. Offsets count the channel's recorded messages from 1,
// with no holes; the epoch changes whenever the history is lost (Redis
// restarted without persistence, keys expired or evicted), so that an offset
// of an old epoch is never taken for one of the new.
//
// Its text form, in since= and in event ids, is <epoch>:<offset>.
type Position struct {
	// Epoch is 1 to MaxEpochLen characters of [A-Za-z0-9_-]; the server
	// makes them from Redis's clock (13 characters or more), or it is
	// NoHistoryEpoch.
	Epoch string
	// Offset is 0 or more; a message's is 1 or more, so <epoch>:0 is the
	// place before the first message of the epoch.
	Offset int64
}

// NoHistoryEpoch is the epoch of a channel that has no history yet (no
// message recorded): its position is 0:0. No epoch the server makes is "0",
// and every epoch follows 0:0 from its offset 1 (see FollowedBy), so a client
// told 0:0 resumes with since=0:0 and gets the channel's messages from the
// first, whatever epoch the channel gets meanwhile.
const NoHistoryEpoch = "0"

// MaxEpochLen is the length of the longest epoch a position may have.
const MaxEpochLen = 64

// String is the position as since= and event ids write it: <epoch>:<offset>.
func (p Position) String() string { return string(p.AppendText(nil)) }

// AppendText appends <epoch>:<offset> to b.
func (p Position) AppendText(b []byte) []byte {
	b = append(b, p.Epoch...)
	b = append(b, ':')
	return strconv.AppendInt(b, p.Offset, 10)
}

// FollowedBy tells whether a message at q is the one right after p: the next
// offset of the same epoch, or offset 1 of any epoch when p is 0:0.
func (p Position) FollowedBy(q Position) bool {
	if q.Offset != p.Offset+1 {
		return false
	}
	return q.Epoch == p.Epoch || p == Position{Epoch: NoHistoryEpoch}
}

// ParsePosition reads <epoch>:<offset>: an epoch of 1 to MaxEpochLen
// characters of [A-Za-z0-9_-] and an offset of decimal digits from 0 to
// 2^63-1 (no sign).
func ParsePosition(s string) (Position, error) {
	epoch, off, ok := strings.Cut(s, ":")
	if !ok || !ValidEpoch(epoch) {
		return Position{}, fmt.Errorf("%q is not <epoch>:<offset>: %w", s, errEpoch)
	}
	n, err := parseOffset(off)
	if err != nil {
		return Position{}, fmt.Errorf("%q is not <epoch>:<offset>: %w", s, err)
	}
	return Position{Epoch: epoch, Offset: n}, nil
}

var (
	errEpoch  = fmt.Errorf("the epoch must be 1 to %d characters of [A-Za-z0-9_-]", MaxEpochLen)
	errOffset = errors.New("the offset must be decimal digits from 0 to 2^63-1")
)

// parseOffset reads an offset: digits only, so that strconv's sign and
// underscores are refused.
func parseOffset(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errOffset
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errOffset
	}
	return n, nil
}

// ValidEpoch reports whether s may be an epoch: 1 to MaxEpochLen
// characters of [A-Za-z0-9_-].
func ValidEpoch(s string) bool {
	if s == "" || len(s) > MaxEpochLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ChannelPosition is the position of a named channel. Its text form,
// <channel>@<epoch>:<offset>, is how since= names the channel to resume on a
// route with several; an empty Channel writes <epoch>:<offset> alone, the
// form for a route's one channel.
type ChannelPosition struct {
	Channel string
	Position
}

// String is the position as since= takes it: <channel>@<epoch>:<offset>, or
// <epoch>:<offset> without a channel. The channel is written as it is: a
// URL's query escaping is the URL's (url.Values does it).
func (c ChannelPosition) String() string {
	if c.Channel == "" {
		return c.Position.String()
	}
	return c.Channel + "@" + c.Position.String()
}

// ParseSince reads one value of since=: <epoch>:<offset>, or
// <channel>@<epoch>:<offset>. The channel is what comes before the last @
// (an epoch and an offset have none), so it may hold @ itself; it must not be
// empty. Whether the route has that channel is the server's to say.
func ParseSince(s string) (ChannelPosition, error) {
	var cp ChannelPosition
	pos := s
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		if at == 0 {
			return cp, fmt.Errorf("%q names no channel before @", s)
		}
		cp.Channel, pos = s[:at], s[at+1:]
	}
	p, err := ParsePosition(pos)
	if err != nil {
		return cp, err
	}
	cp.Position = p
	return cp, nil
}
