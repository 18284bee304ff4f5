package bus

import (
	_ "embed"
	"strings"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
)

// presenceEvent is a presence event as an envelope client gets it.
type presenceEvent struct {
	// "join", "leave", or "presence_reset": events may have been missed
	// (Redis was out of reach), ask again.
	Type    string `json:"type"`
	Channel string `json:"channel"`
	User    string `json:"user,omitempty"`
}

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
	return presenceFrameMessage(events, presenceEvent{Type: typ, Channel: ch, User: user})
}

// presenceFrameMessage is e as a message of the events channel whose
// envelope frame is made already.
func presenceFrameMessage(events string, e presenceEvent) *frame.Message {
	m := &frame.Message{Channel: events}
	f := frame.JsonFrame(e)
	f.Msg = m
	m.Frames[frame.EnvelopeFrames] = f
	return m
}
