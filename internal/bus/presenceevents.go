package bus

import (
	"strings"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// presenceMessage is an event of channel ch that came on its events
// channel, as a message only envelope clients take (they alone are among
// the events channel's clients); nil for anything but "join <user>" or
// "leave <user>".
func presenceMessage(ch, events, payload string) *frame.Message {
	typ, user, ok := strings.Cut(payload, " ")
	if !ok || (typ != "join" && typ != "leave") || user == "" {
		return nil
	}
	Metrics.presenceEvents.WithLabelValues(typ).Inc()
	if typ == "join" {
		return presenceFrameMessage(events, protocol.NewJoin(ch, user))
	}
	return presenceFrameMessage(events, protocol.NewLeave(ch, user))
}

// presenceFrameMessage is e as a message of the events channel whose
// envelope frame is made already.
func presenceFrameMessage(events string, e protocol.Frame) *frame.Message {
	m := &frame.Message{Channel: events}
	f := frame.JsonFrame(e)
	f.Msg = m
	m.Frames[frame.EnvelopeFrames] = f
	return m
}
