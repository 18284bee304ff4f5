package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
)

// CommandSubprotocol is the WebSocket subprotocol of command clients: one
// connection subscribes to and leaves channels at run time. Such a client
// gets every frame as an envelope client does (a JSON Frame; messages carry
// their channel) and sends only Commands, one per text frame; each is
// answered by one frame carrying its ID: the frame of its result, or an
// error frame (TypeError) with a Code and a Reason. The route's own channels
// are subscribed when the connection opens, as for every client, with
// subscribed frames that carry no id.
const CommandSubprotocol = "redis_ws.v2"

// The commands, the "cmd" member of a Command.
const (
	// CmdSubscribe subscribes the connection to Channel, with Since or
	// Rewind to resume it, and Token when a token grants that channel
	// alone. Its answer is the channel's subscribed frame with the id; its
	// messages follow.
	CmdSubscribe = "subscribe"
	// CmdUnsubscribe ends the connection's subscription to Channel;
	// answered by an unsubscribed frame. No message of the channel follows
	// the answer.
	CmdUnsubscribe = "unsubscribe"
	// CmdPublish publishes Data (text) or DataBase64 (binary) to Channel;
	// answered by a published frame, with the message's position when the
	// route records the channel's history.
	CmdPublish = "publish"
	// CmdPresence asks who is connected to Channel (routes with presence);
	// answered by a presence frame listing the users.
	CmdPresence = "presence"
	// CmdRefresh gives the connection a fresh token before its token
	// expires; answered by a refreshed frame with the new expiry.
	CmdRefresh = "refresh"
)

// The types of the frames that answer commands, beside TypeSubscribed.
const (
	TypeUnsubscribed = "unsubscribed"
	TypePublished    = "published"
	TypePresence     = "presence"
	TypeRefreshed    = "refreshed"
	// TypeError answers a command the server refused: Code says why, for
	// programs; Reason, for people. Its ID is 0 when the command was too
	// malformed to have one.
	TypeError = "error"
)

// The codes of error frames. A client decides by the code; the reason may
// change.
const (
	// ErrBadRequest: the command is not JSON, lacks a member its cmd needs,
	// or has one that is invalid (a channel name, a since, a rewind).
	ErrBadRequest = "bad_request"
	// ErrUnknownCommand: the cmd is not one of the Cmd constants.
	ErrUnknownCommand = "unknown_command"
	// ErrForbidden: neither the route's rules nor the connection's token
	// allow it on that channel.
	ErrForbidden = "forbidden"
	// ErrInvalidToken: a command's token is malformed, expired, or not
	// signed by a key the route trusts.
	ErrInvalidToken = "invalid_token"
	// ErrAlreadySubscribed and ErrNotSubscribed: subscribe to a channel the
	// connection has, unsubscribe from one it has not.
	ErrAlreadySubscribed = "already_subscribed"
	ErrNotSubscribed     = "not_subscribed"
	// ErrTooManyChannels: the connection holds the route's max_channels.
	ErrTooManyChannels = "too_many_channels"
	// ErrRateLimited: more commands than the route allows in a second; try
	// again later.
	ErrRateLimited = "rate_limited"
	// ErrTryAgainLater: the route lets no more channels get a history now
	// (its new_channels); nothing was published.
	ErrTryAgainLater = "try_again_later"
	// ErrUnavailable: Redis or the history cannot answer now; nothing was
	// done, but for a publish whose connection to Redis broke after it was
	// sent, which may have been published (its reason says so). Try again
	// later.
	ErrUnavailable = "unavailable"
	// ErrNotEnabled: the route has no presence (a presence command).
	ErrNotEnabled = "not_enabled"
)

// CodeTokenExpired is the code of an unsubscribed frame the server sends by
// itself (no id): the token that granted the channel (a subscribe's own)
// expired and no refresh naming the channel renewed it in time.
const CodeTokenExpired = "token_expired"

// Command is what a command client sends, as JSON in one text frame, e.g.
//
//	{"id":1,"cmd":"subscribe","channel":"room:a","since":"6755e0a10f3a2:41"}
//	{"id":2,"cmd":"publish","channel":"room:a","data":"hi"}
//	{"id":3,"cmd":"unsubscribe","channel":"room:a"}
//	{"id":4,"cmd":"presence","channel":"room:a"}
//	{"id":5,"cmd":"refresh","token":"eyJ…"}
//	{"id":6,"cmd":"refresh","channel":"room:a","token":"eyJ…"}
//
// and the frames that answer them, and the one the server sends when a
// channel's token expired:
//
//	{"type":"subscribed","id":1,"channel":"room:a","offset":41,"epoch":"6755e0a10f3a2","recovered":true}
//	{"type":"published","id":2,"channel":"room:a","offset":42,"epoch":"6755e0a10f3a2"}
//	{"type":"unsubscribed","id":3,"channel":"room:a"}
//	{"type":"presence","id":4,"channel":"room:a","users":["alice","bob"]}
//	{"type":"refreshed","id":5,"exp":1796601600}
//	{"type":"refreshed","id":6,"channel":"room:a","exp":1796601600}
//	{"type":"unsubscribed","channel":"room:a","code":"token_expired","reason":"the channel's token expired; subscribe again with a fresh one"}
//	{"type":"error","id":2,"code":"forbidden","reason":"publishing to this channel is not allowed"}
type Command struct {
	// ID ties the answer to the command: 1 to MaxCommandID, chosen by the
	// client (a counter will do).
	ID  uint64 `json:"id"`
	Cmd string `json:"cmd"`
	// Channel is the channel of every command; a refresh has one only to
	// renew the token of a channel a subscribe's token granted.
	Channel string `json:"channel,omitempty"`
	// Since (a position, <epoch>:<offset>) or Rewind (the last n
	// messages), at most one, resume a subscribe on a route with history.
	Since  string `json:"since,omitempty"`
	Rewind int    `json:"rewind,omitempty"`
	// Token is a signed token: in a subscribe, one that grants the channel;
	// in a refresh, the connection's new token, or with a channel a new
	// token that grants it.
	Token string `json:"token,omitempty"`
	// A publish has one of Data (text) and DataBase64 (binary).
	Data       *string `json:"data,omitempty"`
	DataBase64 *[]byte `json:"data_base64,omitempty"`
}

// MaxCommandID is the largest id: the largest integer a JavaScript number
// holds exactly (2^53-1).
const MaxCommandID = 1<<53 - 1

// ParseCommand reads one command and checks it: an id, a known cmd and the
// members it needs and no others it would ignore. The error of a command
// that has a valid id still returns it, for the error frame.
func ParseCommand(b []byte) (Command, error) {
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		var id struct {
			ID uint64 `json:"id"`
		}
		if json.Unmarshal(b, &id) == nil && id.ID <= MaxCommandID {
			c.ID = id.ID
		}
		return Command{ID: c.ID}, fmt.Errorf("not a command: %w", err)
	}
	if c.ID == 0 || c.ID > MaxCommandID {
		return Command{}, fmt.Errorf("the id must be 1 to %d", uint64(MaxCommandID))
	}
	if err := c.check(); err != nil {
		return Command{ID: c.ID}, fmt.Errorf("%s command: %w", c.Cmd, err)
	}
	return c, nil
}

// ErrUnknownCmd is ParseCommand's error for a cmd it does not know.
var ErrUnknownCmd = errors.New("unknown cmd")

func (c *Command) check() error {
	hasData := c.Data != nil || c.DataBase64 != nil
	resumes := c.Since != "" || c.Rewind != 0
	switch c.Cmd {
	case CmdSubscribe:
		switch {
		case c.Channel == "":
			return errNoChannel
		case c.Since != "" && c.Rewind != 0:
			return errors.New("since and rewind together")
		case c.Rewind < 0:
			return errors.New("rewind is 1 or more")
		case hasData:
			return errForeignMember
		}
		if c.Since != "" {
			if _, err := ParsePosition(c.Since); err != nil {
				return err
			}
		}
	case CmdUnsubscribe, CmdPresence:
		if c.Channel == "" {
			return errNoChannel
		}
		if resumes || hasData || c.Token != "" {
			return errForeignMember
		}
	case CmdPublish:
		switch {
		case c.Channel == "":
			return errNoChannel
		case (c.Data == nil) == (c.DataBase64 == nil):
			return errData
		case resumes || c.Token != "":
			return errForeignMember
		}
	case CmdRefresh:
		switch {
		case c.Token == "":
			return errors.New("no token")
		case resumes || hasData:
			return errForeignMember
		}
	default:
		return ErrUnknownCmd
	}
	return nil
}
