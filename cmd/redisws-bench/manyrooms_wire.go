package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/gorilla/websocket"
)

// roomsServer is the server a manyrooms run talks to: redis_ws with its
// redis_ws.v2 commands, or Centrifugo with its JSON protocol (v2, over
// /connection/websocket). Both send messages as JSON objects whose payload
// is the string member "data" (ours: {"channel":…,"data":…}; Centrifugo's:
// {"push":{"channel":…,"pub":{"data":…}}}), and the publishers send the
// payload as a JSON string, so one reader serves both.
type roomsServer string

const (
	serverRedisWS    roomsServer = "redisws"
	serverCentrifugo roomsServer = "centrifugo"
)

func parseRoomsServer(s string) (roomsServer, error) {
	switch roomsServer(s) {
	case serverRedisWS, serverCentrifugo:
		return roomsServer(s), nil
	}
	return "", fmt.Errorf("-server %q: redisws or centrifugo", s)
}

// subprotocols is what a connection offers in its handshake.
func (s roomsServer) subprotocols() []string {
	if s == serverRedisWS {
		return []string{protocol.CommandSubprotocol}
	}
	return nil
}

// roomChannel is the channel of room r: room:<r> on both (for Centrifugo,
// the namespace "room", which its config lets clients subscribe and publish to).
func roomChannel(r int) string { return "room:" + strconv.Itoa(r) }

// connectCmd is the first command a connection sends, answered with id 1
// before it may subscribe; nil when the server needs none (ours: the
// handshake is the connect).
func (s roomsServer) connectCmd() []byte {
	if s == serverCentrifugo {
		return []byte(`{"id":1,"connect":{}}`)
	}
	return nil
}

func (s roomsServer) subscribeCmd(id uint64, r int) []byte {
	if s == serverCentrifugo {
		return fmt.Appendf(nil, `{"id":%d,"subscribe":{"channel":%q}}`, id, roomChannel(r))
	}
	return fmt.Appendf(nil, `{"id":%d,"cmd":"subscribe","channel":%q}`, id, roomChannel(r))
}

// publishCmd appends the publish command of payload (printable ASCII
// without quotes or backslashes: the stamped payload) to room r onto dst.
func (s roomsServer) publishCmd(dst []byte, id uint64, r int, payload []byte) []byte {
	if s == serverCentrifugo {
		dst = fmt.Appendf(dst, `{"id":%d,"publish":{"channel":"%s","data":"`, id, roomChannel(r))
		return append(append(dst, payload...), `"}}`...)
	}
	dst = fmt.Appendf(dst, `{"id":%d,"cmd":"publish","channel":"%s","data":"`, id, roomChannel(r))
	return append(append(dst, payload...), `"}`...)
}

// pong is the answer to Centrifugo's ping, an empty object; our nodes ping
// with WebSocket control frames, which gorilla answers by itself.
var pong = []byte(`{}`)

var dataKey = []byte(`"data":"`)

// deliveryData returns the payload of a message (a frame, or for
// Centrifugo one line of it), ok false when the frame is no message.
func deliveryData(msg []byte) (data []byte, ok bool) {
	i := bytes.Index(msg, dataKey)
	if i < 0 {
		return nil, false
	}
	rest := msg[i+len(dataKey):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return nil, false
	}
	return rest[:end], true
}

// reply is what a manyrooms connection needs of a frame that is no message.
type reply struct {
	id    uint64
	ping  bool   // Centrifugo's {}: answer with pong
	error string // the refusal, empty when the command succeeded
}

// parseReply reads an answer to a command, or a ping.
func parseReply(msg []byte) (reply, error) {
	if bytes.Equal(bytes.TrimSpace(msg), pong) {
		return reply{ping: true}, nil
	}
	var m struct {
		ID     uint64          `json:"id"`
		Type   string          `json:"type"`   // ours
		Code   string          `json:"code"`   // ours, on an error
		Error  json.RawMessage `json:"error"`  // Centrifugo's {"code":…,"message":…}
		Reason string          `json:"reason"` // ours
	}
	if err := json.Unmarshal(msg, &m); err != nil {
		return reply{}, err
	}
	r := reply{id: m.ID}
	switch {
	case m.Type == protocol.TypeError:
		r.error = m.Code + ": " + m.Reason
	case len(m.Error) > 0:
		r.error = string(m.Error)
	}
	return r, nil
}

// readMessages reads the next frame of conn into buf and hands take each
// message in it: Centrifugo may put several in a frame, one a line.
func readMessages(conn *websocket.Conn, buf *bytes.Buffer, take func(msg []byte) error) error {
	_, r, err := conn.NextReader()
	if err != nil {
		return err
	}
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return err
	}
	frame := buf.Bytes()
	for len(frame) > 0 {
		var msg []byte
		msg, frame, _ = bytes.Cut(frame, []byte{'\n'})
		if err := take(msg); err != nil {
			return err
		}
	}
	return nil
}
