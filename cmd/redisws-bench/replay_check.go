package main

import (
	"fmt"
	"strings"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// replayCheck follows the frames of one resumed client: first a subscribed
// frame that says recovered, at the latest offset and in the epoch it
// resumed in, then every offset after since, exactly once and in order, each
// with the data that was published at it (want, by offset - since - 1).
// Position 0:0 is a channel without history: the first message, offset 1,
// may be of any epoch, which it is checked in from then on.
type replayCheck struct {
	epoch  string
	since  int64
	latest int64    // the subscribed frame's offset on resume: the last message published
	want   []string // data of offsets since+1, since+2, ...
	next   int64    // next offset expected; 0 until the subscribed frame
	errs   map[string]int
}

func newReplayCheck(epoch string, since, latest int64, want []string) *replayCheck {
	return &replayCheck{epoch: epoch, since: since, latest: latest, want: want, errs: map[string]int{}}
}

// add checks one frame and returns the offset it brought the client to
// (every offset up to it received), or 0 before the first message.
func (r *replayCheck) add(b []byte) int64 {
	e, err := parseEnvelope(b)
	switch {
	case err != nil:
		r.errs["malformed"]++
		return r.upTo()
	case e.Type == protocol.TypeSubscribed:
		if r.next != 0 {
			r.errs["subscribed_twice"]++
			return r.upTo()
		}
		r.next = r.since + 1
		if e.Recovered == nil || !*e.Recovered {
			r.errs["not_recovered"]++
		}
		if e.Epoch != r.epoch {
			r.errs["subscribed_epoch"]++
		}
		if *e.Offset != r.latest {
			r.errs["subscribed_offset"]++
		}
		return r.upTo()
	case r.next == 0:
		r.errs["message_before_subscribed"]++
		r.next = r.since + 1
	}
	at, _ := e.Position()
	// Only 0:0 is followed by a message of another epoch.
	if prev := (protocol.Position{Epoch: r.epoch, Offset: r.next - 1}); at.Epoch != prev.Epoch && prev.FollowedBy(at) {
		r.epoch = at.Epoch
	}
	off := at.Offset
	switch {
	case e.Epoch != r.epoch:
		r.errs["epoch"]++
		return r.upTo()
	case off < r.next:
		r.errs["duplicate_or_old"]++
		return r.upTo()
	case off > r.next:
		r.errs["gap"] += int(off - r.next)
	}
	if i := off - r.since - 1; i >= int64(len(r.want)) || *e.Data != r.want[i] {
		r.errs["wrong_data"]++
	}
	r.next = off + 1
	return r.upTo()
}

func (r *replayCheck) upTo() int64 { return max(r.next-1, 0) }

// resumeData is the data of the i-th message of a run, -size bytes when
// that is longer than its prefix.
func resumeData(run uint32, i, size int) string {
	s := fmt.Sprintf("resume %08x %06d ", run, i)
	if len(s) < size {
		s += strings.Repeat("x", size-len(s))
	}
	return s
}
