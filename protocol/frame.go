package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Subprotocol is the WebSocket subprotocol of envelope clients: offered in
// Sec-WebSocket-Protocol, it is taken on every redis_ws route, whatever the
// route's own subprotocols. Such a client gets every frame as a JSON text
// frame, a Frame; what it sends is published as it is, text or binary.
const Subprotocol = "redis_ws.v1"

// The types of frame, the "type" member; a message has none.
const (
	// TypeMessage is a message: {"channel","offset","epoch","data"}.
	TypeMessage = ""
	// TypeSubscribed is the first frame of each channel, before any of its
	// messages: where they start.
	TypeSubscribed = "subscribed"
	// TypeJoin: a user's first connection to the channel appeared, on any
	// node (routes with presence).
	TypeJoin = "join"
	// TypeLeave: a user's last connection to the channel is gone everywhere
	// and the route's leave_delay has passed.
	TypeLeave = "leave"
	// TypePresenceReset: presence events of the channel may have been
	// missed (Redis was out of reach); ask the route who is there.
	TypePresenceReset = "presence_reset"
)

// Frame is one frame the server sends an envelope client, every type in one
// shape: Type says which, and the members a type does not carry are absent
// (nil, or empty). json.Marshal writes a Frame made by NewMessage,
// NewSubscribed, NewJoin, NewLeave or NewPresenceReset byte for byte as the
// server does; Parse reads one and checks it.
//
// A message:
//
//	{"channel":"chat","offset":42,"epoch":"6755e0a10f3a2","data":"hi"}
//	{"channel":"chat","data_base64":"/wAB"}
//
// The subscribed frame of a channel, then the same with "recovered" when the
// client asked to resume (since=), and without a position when the route has
// no history (or it could not be read then):
//
//	{"type":"subscribed","channel":"chat","offset":41,"epoch":"6755e0a10f3a2"}
//	{"type":"subscribed","channel":"chat","offset":41,"epoch":"6755e0a10f3a2","recovered":true}
//	{"type":"subscribed","channel":"chat"}
//
// Presence events:
//
//	{"type":"join","channel":"room:a","user":"alice"}
//	{"type":"leave","channel":"room:a","user":"alice"}
//	{"type":"presence_reset","channel":"room:a"}
type Frame struct {
	// Type is one of the Type constants.
	Type string `json:"type,omitempty"`
	// ID is the id of the command a frame answers (see Command): on every
	// answer but an error to a command without a valid id; 0, absent,
	// on every other frame.
	ID uint64 `json:"id,omitempty"`
	// Channel is the channel the frame is about; empty only on refreshed
	// frames and on errors that answer no channel's command.
	Channel string `json:"channel,omitempty"`
	// Offset and Epoch, always both or neither, are a position. A message
	// carries its own when it was recorded (a live one, from a route without
	// history or redis-cli publish, has none). A subscribed frame carries
	// the one its channel's messages start after: the latest offset, or 0:0
	// for a channel without history (see NoHistoryEpoch).
	Offset *int64 `json:"offset,omitempty"`
	Epoch  string `json:"epoch,omitempty"`
	// Recovered is set on a subscribed frame when the client asked to
	// resume: true when every message after its since follows (replayed
	// before live ones), false when the history could not give them all (an
	// epoch since lost, entries trimmed or expired, more than the route's
	// send_queue): live messages follow from the latest on, reload state.
	Recovered *bool `json:"recovered,omitempty"`
	// A message has one of Data and DataBase64: Data for a text message,
	// DataBase64 for a binary one (base64 in JSON; "" when it is empty).
	Data       *string `json:"data,omitempty"`
	DataBase64 *[]byte `json:"data_base64,omitempty"`
	// User is who joined or left.
	User string `json:"user,omitempty"`

	// The members only answers to commands have: Users, who is connected
	// (a presence frame; absent when nobody is); Exp, the new token's
	// expiry in Unix seconds (a refreshed frame; absent when it has none);
	// Code and Reason, why a command was refused (an error frame).
	Users  []string `json:"users,omitempty"`
	Exp    int64    `json:"exp,omitempty"`
	Code   string   `json:"code,omitempty"`
	Reason string   `json:"reason,omitempty"`
}

// NewMessage is the frame of a message of channel: data as text, or as
// binary when binary is set; at is where it was recorded, the zero Position
// for a live message.
func NewMessage(channel, data string, binary bool, at Position) Frame {
	f := Frame{Channel: channel}
	f.setPosition(at)
	if binary {
		b := []byte(data)
		f.DataBase64 = &b
	} else {
		f.Data = &data
	}
	return f
}

// NewSubscribed is the subscribed frame of channel: at is the position its
// messages start after, the zero Position when it is not known (no history);
// recovered tells a client that asked to resume whether it got everything,
// nil for one that did not ask.
func NewSubscribed(channel string, at Position, recovered *bool) Frame {
	f := Frame{Type: TypeSubscribed, Channel: channel, Recovered: recovered}
	f.setPosition(at)
	return f
}

// NewJoin is the event of user joining channel.
func NewJoin(channel, user string) Frame {
	return Frame{Type: TypeJoin, Channel: channel, User: user}
}

// NewLeave is the event of user leaving channel.
func NewLeave(channel, user string) Frame {
	return Frame{Type: TypeLeave, Channel: channel, User: user}
}

// NewPresenceReset tells that presence events of channel may have been missed.
func NewPresenceReset(channel string) Frame {
	return Frame{Type: TypePresenceReset, Channel: channel}
}

func (f *Frame) setPosition(at Position) {
	if at != (Position{}) {
		f.Offset, f.Epoch = &at.Offset, at.Epoch
	}
}

// Position is the frame's position, and false when it carries none.
func (f Frame) Position() (Position, bool) {
	if f.Offset == nil {
		return Position{}, false
	}
	return Position{Epoch: f.Epoch, Offset: *f.Offset}, true
}

// Payload is a message's bytes, as they were published; nil for other
// frames.
func (f Frame) Payload() []byte {
	switch {
	case f.Data != nil:
		return []byte(*f.Data)
	case f.DataBase64 != nil:
		return *f.DataBase64
	}
	return nil
}

// Binary tells whether a message is binary (its data came as data_base64).
func (f Frame) Binary() bool { return f.DataBase64 != nil }

// String is the frame as JSON.
func (f Frame) String() string {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Sprintf("unprintable frame: %v", err)
	}
	return string(b)
}

// Parse reads one frame and checks that it is one the protocol has: a known
// type, a channel, the members of its type and no others, a position whose
// epoch and offset are valid, a message with exactly one of data and
// data_base64. Members it does not know are ignored, so that a client keeps
// working when later versions add some.
func Parse(b []byte) (Frame, error) {
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return Frame{}, fmt.Errorf("not a frame: %w", err)
	}
	if err := f.check(); err != nil {
		return Frame{}, fmt.Errorf("malformed %s frame: %w", f.typeName(), err)
	}
	return f, nil
}

func (f *Frame) typeName() string {
	if f.Type == TypeMessage {
		return "message"
	}
	return fmt.Sprintf("%q", f.Type)
}

var (
	errNoChannel      = errors.New("no channel")
	errHalfPosition   = errors.New("an offset without an epoch, or an epoch without an offset")
	errData           = errors.New("a message has one of data and data_base64")
	errMessageOffset  = errors.New("a message's offset is 1 or more")
	errRecoveredAlone = errors.New("recovered without a position")
	errNoUser         = errors.New("no user")
	errForeignMember  = errors.New("a member its type does not have")
)

func (f *Frame) check() error {
	if f.Channel == "" && f.Type != TypeRefreshed && f.Type != TypeError {
		return errNoChannel
	}
	if err := f.checkAnswer(); err != nil {
		return err
	}
	if (f.Offset == nil) != (f.Epoch == "") {
		return errHalfPosition
	}
	if p, ok := f.Position(); ok {
		if !ValidEpoch(p.Epoch) {
			return errEpoch
		}
		if p.Offset < 0 {
			return errOffset
		}
	}
	hasData := f.Data != nil || f.DataBase64 != nil
	switch f.Type {
	case TypeMessage:
		switch {
		case (f.Data == nil) == (f.DataBase64 == nil):
			return errData
		case f.Offset != nil && *f.Offset < 1:
			return errMessageOffset
		case f.Recovered != nil || f.User != "":
			return errForeignMember
		}
	case TypeSubscribed:
		switch {
		case f.Recovered != nil && f.Offset == nil:
			return errRecoveredAlone
		case hasData || f.User != "":
			return errForeignMember
		}
	case TypeJoin, TypeLeave:
		switch {
		case f.User == "":
			return errNoUser
		case f.Offset != nil || f.Recovered != nil || hasData:
			return errForeignMember
		}
	case TypePresenceReset, TypeUnsubscribed, TypePresence, TypeRefreshed, TypeError:
		if f.Offset != nil || f.Recovered != nil || hasData || f.User != "" {
			return errForeignMember
		}
	case TypePublished:
		if f.Recovered != nil || hasData || f.User != "" {
			return errForeignMember
		}
	default:
		return errors.New("unknown type")
	}
	return nil
}

// checkAnswer checks the members only the answers to commands have: an id
// on every answer but an error's (which may lack one) and an unsubscribed
// the server sent by itself, users on presence frames, exp on refreshed
// ones, a code and a reason on errors and on that unsubscribed.
func (f *Frame) checkAnswer() error {
	// The server's own unsubscribe (no id) says why, as an error does.
	coded := f.Type == TypeError || f.Type == TypeUnsubscribed && f.ID == 0
	switch f.Type {
	case TypePublished, TypePresence, TypeRefreshed:
		if f.ID == 0 {
			return errors.New("no id")
		}
	}
	switch {
	case coded && (f.Code == "" || f.Reason == ""):
		return errors.New("an error or unsubscribe without a code or a reason")
	case f.ID > MaxCommandID:
		return errors.New("an id over 2^53-1")
	case f.ID != 0 && f.Type != TypeSubscribed && !f.answer():
		return errForeignMember
	case len(f.Users) > 0 && f.Type != TypePresence,
		f.Exp != 0 && f.Type != TypeRefreshed,
		(f.Code != "" || f.Reason != "") && !coded:
		return errForeignMember
	}
	return nil
}

// answer tells whether the frame's type is one only a command's answer has.
func (f *Frame) answer() bool {
	switch f.Type {
	case TypeUnsubscribed, TypePublished, TypePresence, TypeRefreshed, TypeError:
		return true
	}
	return false
}
