package redisws

import (
	"errors"
	"sync"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// A redis_ws.v2 client sends commands (protocol.Command), one per text
// frame, each answered by one frame with its id. The connection's reader
// runs them one at a time, in order, so that their answers come in order.

const (
	// badCommandBurst malformed commands (bad_request, unknown_command) a
	// client may send at once, regained at badCommandRate per second;
	// beyond them the connection is closed with 1008: a client that keeps
	// sending them is broken or hostile, and each costs an answer.
	badCommandBurst = 10
	badCommandRate  = 1
	// commandWait bounds what one command waits for Redis (a history read,
	// a publish's acknowledgement, a presence query).
	commandWait = 5 * time.Second
)

// commands is the state of one command client, owned by its reader.
type commands struct {
	h          *Handler
	c          *fanout.Client
	access     *access
	tokens     connTokens
	subscribes *rate.Limiter // subscribe_rate
	bad        *rate.Limiter // malformed commands
	// mu is held by a command while it runs and by the expiry of a
	// channel's token (cmdchannelexpiry.go), its only other user.
	mu sync.Mutex
	// granted: the exp of each channel a subscribe's own token granted;
	// guarded by mu.
	granted map[string]time.Time
}

func (h *Handler) newCommands(c *fanout.Client, a *access, t connTokens) *commands {
	return &commands{
		h: h, c: c, access: a, tokens: t,
		subscribes: rate.NewLimiter(rate.Limit(h.SubscribeRate), h.SubscribeRateBurst),
		bad:        rate.NewLimiter(badCommandRate, badCommandBurst),
		granted:    map[string]time.Time{},
	}
}

// cmdRefusal is a command's error answer: its code and reason.
type cmdRefusal struct{ code, reason string }

func refuseCmd(code, reason string) *cmdRefusal { return &cmdRefusal{code, reason} }

// handle runs one frame as a command and queues its answer; false ends the
// connection (closed for repeated abuse).
func (cs *commands) handle(typ int, data []byte) bool {
	var cmd protocol.Command
	var r *cmdRefusal
	if typ == websocket.BinaryMessage {
		r = refuseCmd(protocol.ErrBadRequest, "commands are JSON text frames; binary frames are not read")
	} else {
		var err error
		if cmd, err = protocol.ParseCommand(data); errors.Is(err, protocol.ErrUnknownCmd) {
			r = refuseCmd(protocol.ErrUnknownCommand, err.Error())
		} else if err != nil {
			r = refuseCmd(protocol.ErrBadRequest, err.Error())
		}
	}
	if r == nil {
		var answer *protocol.Frame
		if answer, r = cs.run(cmd); r == nil {
			if answer != nil {
				answer.ID = cmd.ID
				cs.c.Enqueue(frame.JsonFrame(answer))
			}
			return true
		}
	}
	if (r.code == protocol.ErrBadRequest || r.code == protocol.ErrUnknownCommand) && !cs.bad.Allow() {
		cs.c.Close(protocol.ClosePolicyViolation, "too many malformed commands")
		return false
	}
	cs.c.Enqueue(frame.JsonFrame(protocol.Frame{Type: protocol.TypeError, ID: cmd.ID, Channel: cmd.Channel, Code: r.code, Reason: r.reason}))
	return true
}

// run runs a parsed command: the frame that answers it (without its id), or
// why it was refused. A subscribe queues its answer itself, before the
// channel's messages: its frame is nil.
func (cs *commands) run(cmd protocol.Command) (*protocol.Frame, *cmdRefusal) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cmd.Cmd != protocol.CmdRefresh || cmd.Channel != "" {
		if err := checkChannel(cmd.Channel); err != nil {
			return nil, refuseCmd(protocol.ErrBadRequest, err.Error())
		}
	}
	switch cmd.Cmd {
	case protocol.CmdSubscribe:
		return cs.subscribe(cmd)
	case protocol.CmdUnsubscribe:
		return cs.unsubscribe(cmd.Channel)
	case protocol.CmdPublish:
		return cs.publish(cmd)
	case protocol.CmdPresence:
		return cs.presence(cmd.Channel)
	default: // protocol.CmdRefresh: ParseCommand knows no other
		return cs.refresh(cmd.Channel, cmd.Token)
	}
}
