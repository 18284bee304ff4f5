package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// TestCommandChannelTokenExpiry: a channel granted by a subscribe's own
// token is left at that token's exp, with an unsubscribed frame (no id,
// code token_expired), and the connection stays; a refresh naming the
// channel with a fresh token that grants it keeps it past the first exp.
// A refresh naming a channel is refused when the token does not grant it
// (invalid_token), when the connection holds no token of that channel
// (not_subscribed), when the name is invalid (bad_request).
func TestCommandChannelTokenExpiry(t *testing.T) {
	a, rdb := aliceCommands(t)

	// exp is in whole seconds: these expire 2 to 3 s from now.
	short := grantToken(t, "alice", 3*time.Second, "secret:*")
	command(t, a, `"id":1,"cmd":"subscribe","channel":"secret:1","token":"`+short+`"`)
	expectFrame(t, a, protocol.TypeSubscribed, 1, "secret:1")
	command(t, a, `"id":2,"cmd":"subscribe","channel":"secret:2","token":"`+short+`"`)
	expectFrame(t, a, protocol.TypeSubscribed, 2, "secret:2")
	command(t, a, `"id":3,"cmd":"subscribe","channel":"room:r"`) // by the route's rules
	expectFrame(t, a, protocol.TypeSubscribed, 3, "room:r")

	fresh := grantToken(t, "alice", time.Hour, "secret:*", "room:*", "user:*")
	for id, c := range []struct{ channel, token, code string }{
		{"secret:2", grantToken(t, "alice", time.Hour, "secret:1"), protocol.ErrInvalidToken}, // not granted
		{"secret:2", grantToken(t, "bob", time.Hour, "secret:*"), protocol.ErrInvalidToken},   // another user
		{"secret:2", grantToken(t, "alice", -time.Minute, "secret:*"), protocol.ErrInvalidToken},
		{"secret:2", "garbage", protocol.ErrInvalidToken},
		{"secret:2", strings.Repeat("a", 9<<10), protocol.ErrInvalidToken},
		{"secret:9", fresh, protocol.ErrNotSubscribed},                  // not followed
		{"room:r", fresh, protocol.ErrNotSubscribed},                    // followed by the rules
		{"user:alice", fresh, protocol.ErrNotSubscribed},                // the route's own
		{"redis_ws:{secret:2}:presence", fresh, protocol.ErrBadRequest}, // reserved
		{strings.Repeat("s", 2000), fresh, protocol.ErrBadRequest},      // too long
	} {
		id := strconv.Itoa(10 + id)
		command(t, a, `"id":`+id+`,"cmd":"refresh","channel":"`+c.channel+`","token":"`+c.token+`"`)
		n, _ := strconv.ParseUint(id, 10, 64)
		expectRefusal(t, a, n, c.code)
	}
	command(t, a, `"id":30,"cmd":"refresh","channel":"secret:2","token":"`+fresh+`"`)
	if f := expectFrame(t, a, protocol.TypeRefreshed, 30, "secret:2"); f.Exp < time.Now().Add(time.Hour-time.Minute).Unix() {
		t.Fatalf("refreshed %s; want the fresh token's exp", frameString(f))
	}

	f := nextFrame(t, a)
	if f.Type != protocol.TypeUnsubscribed || f.ID != 0 || f.Channel != "secret:1" || f.Code != protocol.CodeTokenExpired || f.Reason == "" {
		t.Fatalf("got %s; want secret:1 unsubscribed with code %s", frameString(f), protocol.CodeTokenExpired)
	}
	publish(t, rdb, "secret:1", "after its exp")
	publish(t, rdb, "secret:2", "renewed")
	publish(t, rdb, "room:r", "by the rules")
	expectMessage(t, a, "secret:2", "renewed")
	expectMessage(t, a, "room:r", "by the rules")
	stillOpen(t, a, 31)
	// Subscribed again with a fresh token, it follows the channel.
	command(t, a, `"id":32,"cmd":"subscribe","channel":"secret:1","token":"`+fresh+`"`)
	expectFrame(t, a, protocol.TypeSubscribed, 32, "secret:1")
	publish(t, rdb, "secret:1", "again")
	expectMessage(t, a, "secret:1", "again")
}
