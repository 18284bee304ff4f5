package redisws

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"go.uber.org/zap"
)

// maySubscribe decides a subscribe: the route's rules, else the command's
// token when it has one (a bad token, or one that does not grant ch, is
// invalid_token); then the channel lasts until the token's exp (zero:
// none).
func (cs *commands) maySubscribe(ch, token string) (time.Time, *cmdRefusal) {
	switch {
	case cs.access.maySubscribe(ch):
		return time.Time{}, nil
	case token != "":
		return cs.channelToken(ch, token)
	}
	return time.Time{}, refuseCmd(protocol.ErrForbidden, "subscribing to this channel is not allowed")
}

// subscribe joins the channel at run time, as admit subscribes a route's
// own: Redis confirms the subscription, then its subscribed frame (with the
// command's id) and replay are queued, then its live messages. It answers
// by itself: its frame is nil.
func (cs *commands) subscribe(cmd protocol.Command) (*protocol.Frame, *cmdRefusal) {
	h, ch := cs.h, cmd.Channel
	var since *frame.Position
	if cmd.Since != "" || cmd.Rewind != 0 {
		if h.History == nil {
			return nil, refuseCmd(protocol.ErrBadRequest, "since and rewind need the route's history, which is off")
		}
		if cmd.Since != "" {
			p, _ := protocol.ParsePosition(cmd.Since) // ParseCommand checked it
			since = &p
		}
	}
	if !cs.subscribes.Allow() {
		return nil, refuseCmd(protocol.ErrRateLimited, "more subscribes than the route allows per second (subscribe_rate); try again later")
	}
	exp, r := cs.maySubscribe(ch, cmd.Token)
	if r != nil {
		return nil, r
	}
	switch err := h.hub.Join(cs.c, ch, h.MaxChannels); {
	case errors.Is(err, fanout.ErrAlreadySubscribed):
		return nil, refuseCmd(protocol.ErrAlreadySubscribed, "the connection is subscribed to this channel already")
	case errors.Is(err, fanout.ErrTooManyChannels):
		return nil, refuseCmd(protocol.ErrTooManyChannels, fmt.Sprintf("the connection follows %d channels, the route's max_channels", h.MaxChannels))
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandWait)
	defer cancel()
	wait := []string{ch}
	if h.Presence != nil {
		wait = append(wait, bus.PresenceEvents(ch))
	}
	h.broker.WaitReady(ctx, wait)
	// A run-time replay shares the connection's send_queue with what waits
	// for it: a client that subscribes to many channels without reading
	// holds at most send_queue, not send_queue per channel.
	budget := cs.c.Room()
	rewind := 0
	if h.History != nil {
		rewind = min(cmd.Rewind, h.History.Size)
	}
	st, err := h.channelStart(ctx, cs.c, ch, since, rewind, &budget, h.broker.Outage())
	if err != nil {
		if since != nil || cmd.Rewind > 0 {
			_ = h.hub.Leave(cs.c, ch)
			h.logger.Debug("resume refused", zap.Error(err))
			return nil, refuseCmd(protocol.ErrUnavailable, "the history cannot be read now; try again later")
		}
		st = channelStart{}
	}
	var at protocol.Position // the zero position: none written
	if st.at != nil {
		at = *st.at
	}
	answer := protocol.NewSubscribed(ch, at, st.recovered)
	answer.ID = cmd.ID
	cs.c.FinishJoin(ch, append([]*frame.Frame{frame.JsonFrame(answer)}, st.replay...), st.upTo)
	cs.grantedUntil(ch, exp)
	return nil, nil
}

// unsubscribe leaves the channel: nothing of it follows the answer.
func (cs *commands) unsubscribe(ch string) (*protocol.Frame, *cmdRefusal) {
	if err := cs.h.hub.Leave(cs.c, ch); err != nil {
		return nil, refuseCmd(protocol.ErrNotSubscribed, "the connection is not subscribed to this channel")
	}
	cs.ungrant(ch)
	return &protocol.Frame{Type: protocol.TypeUnsubscribed, Channel: ch}, nil
}
