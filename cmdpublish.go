package redisws

import (
	"context"
	"errors"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"go.uber.org/zap"
)

// publish sends the command's data to its channel and waits for Redis's
// answer: a published frame, with the message's position when the route
// records the channel's history, or why nothing was published.
func (cs *commands) publish(cmd protocol.Command) (*protocol.Frame, *refusal) {
	h, ch := cs.h, cmd.Channel
	if !cs.access.mayPublish(ch) {
		return nil, refuseCmd(protocol.ErrForbidden, "publishing to this channel is not allowed")
	}
	data, binary := []byte(nil), cmd.DataBase64 != nil
	if binary {
		data = *cmd.DataBase64
	} else {
		data = []byte(*cmd.Data)
	}
	unavailable := refuseCmd(protocol.ErrUnavailable, "redis cannot take the message now; it was not published, try again later")
	ack := bus.NewPublishAck("")
	if !h.broker.PublishWaiting(ch, data, binary, h.history, ack) {
		return nil, unavailable
	}
	if ack.Wait(context.Background(), commandWait) != nil {
		return nil, unavailable
	}
	switch {
	case errors.Is(ack.Err, bus.ErrNewChannels):
		return nil, refuseCmd(protocol.ErrTryAgainLater, "too many new channels get a history on this route (new_channels); nothing was published, try again later")
	case errors.Is(ack.Err, bus.ErrExpired) || errors.Is(ack.Err, bus.ErrRefused):
		h.logger.Debug("publish command refused", zap.String("channel", ch), zap.Error(ack.Err))
		return nil, unavailable
	case ack.Err != nil:
		h.logger.Debug("publish command not confirmed", zap.String("channel", ch), zap.Error(ack.Err))
		return nil, refuseCmd(protocol.ErrUnavailable, "redis did not confirm the message; it may have been published")
	}
	answer := &protocol.Frame{Type: protocol.TypePublished, Channel: ch}
	if ack.Pos.Offset > 0 {
		answer.Offset, answer.Epoch = &ack.Pos.Offset, ack.Pos.Epoch
	}
	return answer, nil
}

// presence answers who is connected to a channel the connection may
// subscribe to, on every node.
func (cs *commands) presence(ch string) (*protocol.Frame, *refusal) {
	h := cs.h
	if h.Presence == nil {
		return nil, refuseCmd(protocol.ErrNotEnabled, "this route has no presence")
	}
	if !cs.access.maySubscribe(ch) {
		return nil, refuseCmd(protocol.ErrForbidden, "this channel's presence is not allowed to this connection")
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandWait)
	defer cancel()
	counts, err := h.broker.ReadPresence(ctx, []string{ch}, h.Presence.MaxUsers)
	if err != nil {
		h.logger.Debug("presence command failed", zap.Error(err))
		return nil, refuseCmd(protocol.ErrUnavailable, "presence cannot be read now (Redis is out of reach); try again later")
	}
	return &protocol.Frame{Type: protocol.TypePresence, Channel: ch, Users: counts[ch].Users}, nil
}
