package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"

	"github.com/gorilla/websocket"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// limitsNode runs /ws (room:* allowed, max_channels 3, subscribe_rate
// slow to refill, 1 KiB commands), /p (presence, users from the query) and
// /h (history with new_channels 1), all on chat.
func limitsNode(t *testing.T, rs *redisServer) *caddyNode {
	t.Helper()
	return startNode(t, "node", siteCaddyfile("", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		allow subscribe room:*
		allow publish room:*
		max_channels 3
		subscribe_rate 0.01 5
		max_message_size 1KiB
	}
	redis_ws /p chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		allow subscribe room:*
		presence {
			user {http.request.uri.query.name}
		}
	}
	redis_ws /h chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		allow publish room:*
		history 10 1h {
			new_channels 1
		}
	}
	respond /health 200`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
}

// TestCommandsRefusals: every malformed command gets an error frame
// (bad_request, unknown_command; id 0 when none could be read), refresh and
// presence without presence are not enabled, and the limits refuse with
// their codes: max_channels, subscribe_rate, new_channels; a command beyond
// max_message_size closes with 1009, repeated malformed commands with 1008.
func TestCommandsRefusals(t *testing.T) {
	rs := startRedis(t)
	node := limitsNode(t, rs)
	c := dialCommands(t, node.WSURL("/ws"), nil)
	expectFrame(t, c, protocol.TypeSubscribed, 0, "chat")

	c.SendText(t, "hello")
	expectRefusal(t, c, 0, protocol.ErrBadRequest)
	c.Send(t, websocket.BinaryMessage, []byte(`{"id":1,"cmd":"presence","channel":"room:a"}`))
	expectRefusal(t, c, 0, protocol.ErrBadRequest)
	for i, members := range []string{
		`"id":2,"cmd":"subscribe"`,                                        // no channel
		`"id":3,"cmd":"subscribe","channel":"room:a","since":"x"`,         // not a position
		`"id":4,"cmd":"subscribe","channel":"room:a","rewind":-1`,         // negative
		`"id":5,"cmd":"publish","channel":"room:a"`,                       // no data
		`"id":6,"cmd":"subscribe","channel":"redis_ws:{room:a}:presence"`, // reserved
		`"id":7,"cmd":"subscribe","channel":"room:a","rewind":2`,          // no history here
		`"id":8,"cmd":"subscribe","channel":"room:` + strings.Repeat("a", 300) + `"`,
	} {
		command(t, c, members)
		expectRefusal(t, c, uint64(i+2), protocol.ErrBadRequest)
	}
	command(t, c, `"id":9,"cmd":"dance","channel":"room:a"`)
	expectRefusal(t, c, 9, protocol.ErrUnknownCommand)
	command(t, c, `"id":10,"cmd":"refresh","token":"abc"`)
	expectRefusal(t, c, 10, protocol.ErrNotEnabled)
	command(t, c, `"id":11,"cmd":"presence","channel":"room:a"`)
	expectRefusal(t, c, 11, protocol.ErrNotEnabled)
	command(t, c, `"id":12,"cmd":"subscribe","channel":"lobby"`)
	expectRefusal(t, c, 12, protocol.ErrForbidden)

	// max_channels 3: chat and two rooms. Five subscribes use the burst.
	for id, room := range []string{"a", "b"} {
		command(t, c, `"id":`+strconv.Itoa(20+id)+`,"cmd":"subscribe","channel":"room:`+room+`"`)
		expectFrame(t, c, protocol.TypeSubscribed, uint64(20+id), "room:"+room)
	}
	command(t, c, `"id":22,"cmd":"subscribe","channel":"room:c"`)
	expectRefusal(t, c, 22, protocol.ErrTooManyChannels)
	command(t, c, `"id":23,"cmd":"unsubscribe","channel":"chat"`)
	expectFrame(t, c, protocol.TypeUnsubscribed, 23, "chat")
	command(t, c, `"id":24,"cmd":"subscribe","channel":"room:c"`)
	expectFrame(t, c, protocol.TypeSubscribed, 24, "room:c")
	command(t, c, `"id":25,"cmd":"unsubscribe","channel":"room:c"`)
	expectFrame(t, c, protocol.TypeUnsubscribed, 25, "room:c")
	// The burst of 5 is spent (12 counted too: refused after the rate).
	command(t, c, `"id":26,"cmd":"subscribe","channel":"room:c"`)
	expectRefusal(t, c, 26, protocol.ErrRateLimited)

	// A command beyond max_message_size closes the connection.
	big := dialCommands(t, node.WSURL("/ws"), nil)
	command(t, big, `"id":1,"cmd":"publish","channel":"room:a","data":"`+strings.Repeat("x", 2048)+`"`)
	if code, _ := big.WaitClosed(t, wait); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d after a command beyond max_message_size; want 1009", code)
	}

	// Ten malformed commands are answered; the eleventh closes with 1008.
	junk := dialCommands(t, node.WSURL("/ws"), nil)
	expectFrame(t, junk, protocol.TypeSubscribed, 0, "chat")
	for range 10 {
		junk.SendText(t, "junk")
		expectRefusal(t, junk, 0, protocol.ErrBadRequest)
	}
	junk.SendText(t, "junk")
	if code, _ := junk.WaitClosed(t, wait); code != protocol.ClosePolicyViolation {
		t.Fatalf("close code %d after repeated malformed commands; want 1008", code)
	}

	// new_channels 1: beyond one new channel a minute, a publish to a new
	// channel is refused, and nothing was recorded.
	h := dialCommands(t, node.WSURL("/h"), nil)
	expectFrame(t, h, protocol.TypeSubscribed, 0, "chat")
	refused := ""
	for i := 1; i <= 3 && refused == ""; i++ {
		ch := "room:new" + strconv.Itoa(i)
		command(t, h, `"id":`+strconv.Itoa(i)+`,"cmd":"publish","channel":"`+ch+`","data":"x"`)
		if f := nextFrame(t, h); f.Type == protocol.TypeError {
			if f.ID != uint64(i) || f.Code != protocol.ErrTryAgainLater {
				t.Fatalf("publish to %s: %s; want try_again_later", ch, frameString(f))
			}
			refused = ch
		}
	}
	if refused == "" {
		t.Fatal("three publishes to new channels, none refused by new_channels 1")
	}
	if n := rs.Client(t).Exists(context.Background(), bus.HistoryKeys(refused)...).Val(); n != 0 {
		t.Fatalf("refused channel %s left %d keys", refused, n)
	}

	// Presence of a channel subscribed at run time.
	p := dialCommands(t, node.WSURL("/p?name=alice"), nil)
	expectFrame(t, p, protocol.TypeSubscribed, 0, "chat")
	command(t, p, `"id":1,"cmd":"subscribe","channel":"room:p"`)
	expectFrame(t, p, protocol.TypeSubscribed, 1, "room:p")
	testkit.Eventually(t, wait, func() bool {
		command(t, p, `"id":2,"cmd":"presence","channel":"room:p"`)
		for {
			f := nextFrame(t, p)
			if f.ID == 2 {
				return f.Type == protocol.TypePresence && strings.Join(f.Users, ",") == "alice"
			}
		}
	}, "alice present in room:p")
	command(t, p, `"id":3,"cmd":"presence","channel":"lobby"`)
	expectRefusal(t, p, 3, protocol.ErrForbidden)
	// Another user's run-time subscribe is a join event for alice.
	bob := dialCommands(t, node.WSURL("/p?name=bob"), nil)
	expectFrame(t, bob, protocol.TypeSubscribed, 0, "chat")
	command(t, bob, `"id":1,"cmd":"subscribe","channel":"room:p"`)
	expectFrame(t, bob, protocol.TypeSubscribed, 1, "room:p")
	for f := nextFrame(t, p); f.Type != protocol.TypeJoin || f.User != "bob" || f.Channel != "room:p"; f = nextFrame(t, p) {
		if f.Type == protocol.TypeLeave {
			t.Fatalf("alice got %s before bob's join", frameString(f))
		}
	}

	// A client that offers both subprotocols gets the commands.
	both := &websocket.Dialer{Proxy: nil, Subprotocols: []string{protocol.Subprotocol, protocol.CommandSubprotocol}}
	v, _, err := tryDialWSWith(t, both, node.WSURL("/ws"), nil)
	if err != nil || v.Conn.Subprotocol() != protocol.CommandSubprotocol {
		t.Fatalf("offering v1 and v2: %v, got %q", err, v.Conn.Subprotocol())
	}
	v.Close()

	// Redis gone: a publish is answered unavailable, not dropped silently.
	rs.Kill(t)
	command(t, c, `"id":27,"cmd":"publish","channel":"room:a","data":"x"`)
	expectRefusal(t, c, 27, protocol.ErrUnavailable)
}
