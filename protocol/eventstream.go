package protocol

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// The names of events in an event stream (Server-Sent Events, a GET with
// Accept: text/event-stream). Each message is one event: its payload on
// data: lines, and for a recorded message an id: line (see ParseEventID).
// A comment line ": ping" comes every ping interval.
const (
	// EventMessage is a text message, the default name: the event has no
	// event: line, and EventSource fires onmessage.
	EventMessage = "message"
	// EventBinary is a binary message, or text that an event stream cannot
	// carry exactly (with a carriage return): its payload in standard
	// base64 on one data: line.
	EventBinary = "binary"
	// EventReset starts a stream whose resume (Last-Event-ID, since=) the
	// history could not serve: its data is a Reset and its id the position
	// live messages follow from. Reload state.
	EventReset = "reset"
)

// Reset is the data of a reset event, as JSON: the channel and the position
// its live messages follow, e.g.
//
//	{"channel":"chat","epoch":"6755e0a10f3a2","offset":43}
type Reset struct {
	Channel string `json:"channel"`
	Epoch   string `json:"epoch"`
	Offset  int64  `json:"offset"`
}

// Position is where the stream of the channel goes on from.
func (r Reset) Position() Position { return Position{Epoch: r.Epoch, Offset: r.Offset} }

// ParseEventID reads the id of an event, as the stream sent it and as a
// reconnecting EventSource sends it back in Last-Event-ID:
//
//   - on a route with one channel, its position: <epoch>:<offset>, with an
//     empty Channel;
//   - on a route with several, the position of each channel that has one,
//     <channel>@<epoch>:<offset> separated by commas, each channel name
//     path-escaped (url.PathEscape) and named once.
//
// A stream on a route with history starts with an event that has only an id:
// the position before its first message (0:0 while a channel has no
// history). The result's length grows with the id's: bound the id first when
// it comes from someone else.
func ParseEventID(id string) ([]ChannelPosition, error) {
	if id == "" {
		return nil, errors.New("the event id is empty")
	}
	n := strings.Count(id, ",") + 1
	parts := make([]ChannelPosition, 0, n)
	var seen map[string]bool
	if n > 1 {
		seen = make(map[string]bool, n)
	}
	for part := range strings.SplitSeq(id, ",") {
		cp, err := parseIDPart(part)
		switch {
		case err != nil:
			return nil, fmt.Errorf("event id %q: %w", id, err)
		case n == 1:
		case cp.Channel == "":
			return nil, fmt.Errorf("event id %q: each position of several names its channel: <channel>@<epoch>:<offset>", id)
		case seen[cp.Channel]:
			return nil, fmt.Errorf("event id %q names channel %q twice", id, cp.Channel)
		default:
			seen[cp.Channel] = true
		}
		parts = append(parts, cp)
	}
	return parts, nil
}

// parseIDPart reads one part of an event id: [<escaped channel>@]<epoch>:<offset>.
func parseIDPart(part string) (ChannelPosition, error) {
	var cp ChannelPosition
	pos := part
	if at := strings.LastIndexByte(part, '@'); at >= 0 {
		ch, err := url.PathUnescape(part[:at])
		if err != nil || ch == "" {
			return cp, fmt.Errorf("%q does not name a channel (path-escaped) before @", part)
		}
		cp.Channel, pos = ch, part[at+1:]
	}
	p, err := ParsePosition(pos)
	if err != nil {
		return cp, err
	}
	cp.Position = p
	return cp, nil
}

// FormatEventID writes the id of an event: see ParseEventID. Give one
// position with an empty Channel for a route of one channel, and one per
// channel, each named, for a route of several.
func FormatEventID(ps ...ChannelPosition) string { return string(AppendEventID(nil, ps...)) }

// AppendEventID appends the id FormatEventID writes to b.
func AppendEventID(b []byte, ps ...ChannelPosition) []byte {
	for i, cp := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		if cp.Channel != "" {
			b = append(b, url.PathEscape(cp.Channel)...)
			b = append(b, '@')
		}
		b = cp.AppendText(b)
	}
	return b
}
