package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/gorilla/websocket"
)

// parseEnvelope reads one frame of an envelope client of a route with
// history (protocol.Parse), which the resume mode needs: a subscribed frame
// must carry a position, and a message an offset and text data.
func parseEnvelope(b []byte) (protocol.Frame, error) {
	f, err := protocol.Parse(b)
	if err != nil {
		return f, err
	}
	_, positioned := f.Position()
	switch {
	case f.Type == protocol.TypeSubscribed:
		if !positioned {
			return f, errors.New("subscribed frame without offset and epoch (is history on?)")
		}
	case f.Type != protocol.TypeMessage:
		return f, fmt.Errorf("unexpected frame type %q", f.Type)
	case !positioned || f.Data == nil:
		return f, errors.New("message without offset, epoch or data")
	}
	return f, nil
}

// readSubscribed reads a connection's first frame, which must be a
// subscribed frame with a position.
func readSubscribed(conn *websocket.Conn, timeout time.Duration) (protocol.Frame, error) {
	if conn.Subprotocol() != protocol.Subprotocol {
		return protocol.Frame{}, fmt.Errorf("the server did not take subprotocol %s", protocol.Subprotocol)
	}
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	defer conn.SetReadDeadline(time.Time{})
	_, b, err := conn.ReadMessage()
	if err != nil {
		return protocol.Frame{}, err
	}
	e, err := parseEnvelope(b)
	if err == nil && e.Type != protocol.TypeSubscribed {
		err = errors.New("first frame is not a subscribed frame")
	}
	return e, err
}
