package e2e

// Command clients (redis_ws.v2) for the tests: dial, send a command, read
// the frame that answers it.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"

	"github.com/gorilla/websocket"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

var commandDialer = &websocket.Dialer{Proxy: nil, HandshakeTimeout: 10 * time.Second, Subprotocols: []string{protocol.CommandSubprotocol}}

// dialCommands opens a command client and checks that the server took the
// command protocol.
func dialCommands(t testing.TB, url string, header http.Header) *wsClient {
	t.Helper()
	c, _, err := tryDialWSWith(t, commandDialer, url, header)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(c.Close)
	if p := c.Conn.Subprotocol(); p != protocol.CommandSubprotocol {
		t.Fatalf("subprotocol %q, want %q", p, protocol.CommandSubprotocol)
	}
	return c
}

// nextFrame reads the next frame as JSON.
func nextFrame(t testing.TB, c *wsClient) protocol.Frame {
	t.Helper()
	m := c.Next(t, wait)
	var f protocol.Frame
	if m.Type != websocket.TextMessage || json.Unmarshal(m.Data, &f) != nil {
		t.Fatalf("%s: not a JSON frame: %s", c.URL, m)
	}
	return f
}

// command sends one command, a JSON object given as its members.
func command(t testing.TB, c *wsClient, members string) {
	t.Helper()
	c.SendText(t, "{"+members+"}")
}

// expectFrame reads the next frame and checks its type, id and channel.
func expectFrame(t testing.TB, c *wsClient, typ string, id uint64, ch string) protocol.Frame {
	t.Helper()
	f := nextFrame(t, c)
	if f.Type != typ || f.ID != id || f.Channel != ch {
		t.Fatalf("%s: got %s, want a %q frame with id %d of channel %q", c.URL, frameString(f), typ, id, ch)
	}
	return f
}

// expectRefusal reads the next frame: an error with the code and id.
func expectRefusal(t testing.TB, c *wsClient, id uint64, code string) {
	t.Helper()
	f := nextFrame(t, c)
	if f.Type != protocol.TypeError || f.ID != id || f.Code != code || f.Reason == "" {
		t.Fatalf("%s: got %s, want error %s with id %d and a reason", c.URL, frameString(f), code, id)
	}
}

// expectMessage reads the next frame: a text message of ch.
func expectMessage(t testing.TB, c *wsClient, ch, data string) protocol.Frame {
	t.Helper()
	f := nextFrame(t, c)
	if f.Type != protocol.TypeMessage || f.Channel != ch || f.Data == nil || *f.Data != data {
		t.Fatalf("%s: got %s, want message %q of %s", c.URL, frameString(f), data, ch)
	}
	return f
}

func frameString(f protocol.Frame) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// positionOf is the "<epoch>:<offset>" of a frame.
func positionOf(f protocol.Frame) string {
	if f.Offset == nil {
		return ""
	}
	return fmt.Sprintf("%s:%d", f.Epoch, *f.Offset)
}

// awaitAnswer reads frames until the answer to the command id, skipping
// messages and presence events.
func awaitAnswer(t testing.TB, c *wsClient, id uint64) protocol.Frame {
	t.Helper()
	for {
		if f := nextFrame(t, c); f.ID == id {
			return f
		}
	}
}

// expectMessageAmidPresence reads frames until a message, skipping
// presence events, and checks that it is data of ch.
func expectMessageAmidPresence(t testing.TB, c *wsClient, ch, data string) protocol.Frame {
	t.Helper()
	for {
		switch f := nextFrame(t, c); f.Type {
		case protocol.TypeJoin, protocol.TypeLeave, protocol.TypePresenceReset:
		case protocol.TypeMessage:
			if f.Channel != ch || f.Data == nil || *f.Data != data {
				t.Fatalf("%s: got %s, want message %q of %s", c.URL, frameString(f), data, ch)
			}
			return f
		default:
			t.Fatalf("%s: got %s, want message %q of %s", c.URL, frameString(f), data, ch)
		}
	}
}

// waitCommandPresence asks the presence of ch with the command id until it
// answers users (comma-separated).
func waitCommandPresence(t testing.TB, c *wsClient, id uint64, ch, users string) {
	t.Helper()
	var last protocol.Frame
	testkit.Eventually(t, wait, func() bool {
		command(t, c, `"id":`+strconv.FormatUint(id, 10)+`,"cmd":"presence","channel":"`+ch+`"`)
		last = awaitAnswer(t, c, id)
		return last.Type == protocol.TypePresence && strings.Join(last.Users, ",") == users
	}, "%s: presence of %s %v, want %s", c.URL, ch, atFailure(func() any { return frameString(last) }), users)
}
