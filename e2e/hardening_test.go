package e2e

// Hostile input: plain HTTP and foreign origins refused before the upgrade,
// frames no real client would send, handshakes that never finish, and users
// who try to hear another user's channel (placeholder values are taken
// literally).

import (
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"
)

func TestPlainHTTPAndOrigin(t *testing.T) {
	rs := startRedis(t)
	n := startNode(t, "node", siteCaddyfile("", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
	redis_ws /open chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		origins https://app.example.com
	}`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})

	status, body := httpGet(t, n.URL("/ws"))
	if status != http.StatusBadRequest || !strings.Contains(body, "connect with a WebSocket client") {
		t.Fatalf("plain GET: %d %q", status, body)
	}
	for _, tc := range []struct {
		path, origin string
		status       int
	}{
		{"/ws", "http://evil.example", http.StatusForbidden},
		{"/ws", "http://" + strings.TrimPrefix(n.URL(""), "http://"), http.StatusSwitchingProtocols},
		{"/ws", "", http.StatusSwitchingProtocols},
		{"/open", "https://app.example.com", http.StatusSwitchingProtocols},
		{"/open", "https://evil.example.com", http.StatusForbidden},
	} {
		header := http.Header{}
		if tc.origin != "" {
			header.Set("Origin", tc.origin)
		}
		c, resp, _ := tryDialWS(t, n.WSURL(tc.path), header)
		if resp == nil || resp.StatusCode != tc.status {
			t.Fatalf("%s with Origin %q: got %v, want %d", tc.path, tc.origin, resp, tc.status)
		}
		if c != nil {
			c.Close()
		}
	}
}

// Hostile frames get the RFC 6455 answer, and the node goes on serving.
func TestHostileFrames(t *testing.T) {
	rs := startRedis(t)
	n := chatNode(t, rs.Port, "ping_interval 1s")
	base := n.BaseGoroutines(t)
	watcher := dialWS(t, n.WSURL("/ws"), nil)

	// A fragmented message is reassembled and published whole.
	c := rawDial(t, n, "/ws")
	c.frame(t, false, websocket.TextMessage, []byte("frag"), true, -1)
	c.frame(t, true, 0 /* continuation */, []byte("mented"), true, -1)
	if m := watcher.Next(t, wait); string(m.Data) != "fragmented" {
		t.Fatalf("got %v", m)
	}
	c.Close()

	for _, tc := range []struct {
		name string
		send func(c *rawConn)
		want int
	}{
		{"control frame over 125 bytes", func(c *rawConn) { c.frame(t, true, websocket.PingMessage, make([]byte, 126), true, -1) }, websocket.CloseProtocolError},
		{"invalid UTF-8 text", func(c *rawConn) { c.frame(t, true, websocket.TextMessage, []byte{0xc3, 0x28}, true, -1) }, websocket.CloseInvalidFramePayloadData},
		{"close frame with a bad code", func(c *rawConn) { c.frame(t, true, websocket.CloseMessage, []byte{0x03, 0xe7}, true, -1) }, websocket.CloseProtocolError},
		{"unmasked frame", func(c *rawConn) { c.frame(t, true, websocket.TextMessage, []byte("hi"), false, -1) }, websocket.CloseProtocolError},
		{"huge declared length", func(c *rawConn) { c.frame(t, true, websocket.BinaryMessage, nil, true, 1<<62) }, websocket.CloseMessageTooBig},
		{"half-open: never answers pings", func(*rawConn) {}, -1},
	} {
		c := rawDial(t, n, "/ws")
		tc.send(c)
		if got := c.CloseCode(t); got != tc.want {
			t.Errorf("%s: close code %d, want %d", tc.name, got, tc.want)
		}
		c.Close()
	}

	// 1,000 handshakes that never finish do not stop anyone else.
	var stuck []net.Conn
	for range 1000 {
		conn, err := net.Dial("tcp", strings.TrimPrefix(n.URL(""), "http://"))
		if err != nil {
			t.Fatal(err)
		}
		stuck = append(stuck, conn)
		_, _ = conn.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"))
	}
	late := dialWS(t, n.WSURL("/ws"), nil)
	late.SendText(t, "still serving")
	for _, c := range []*wsClient{watcher, late} {
		if m := c.Next(t, wait); string(m.Data) != "still serving" {
			t.Fatalf("got %v", m)
		}
	}
	for _, conn := range stuck {
		_ = conn.Close()
	}
	watcher.Close()
	late.Close()
	n.GoroutinesBackTo(t, base)
}

// With basic_auth before redis_ws, each user hears only their own channel,
// whatever the path, query or headers say; placeholder values are taken
// literally, never expanded again.
func TestAccessControl(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	hashed, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost) // fast to check
	if err != nil {
		t.Fatal(err)
	}
	hash := string(hashed)
	n := startNode(t, "node", siteCaddyfile("", `
	basic_auth /user/* {
		alice `+hash+`
		bob `+hash+`
	}
	redis_ws /user/* {
		subscribe user:{http.auth.user.id}
		publish off
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
	redis_ws /room {
		subscribe room:{http.request.uri.query.name}
		redis redis://127.0.0.1:{$REDIS_PORT}
	}`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
	auth := func(user string, extra ...string) http.Header {
		h := http.Header{}
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":secret")))
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return h
	}
	if _, resp, _ := tryDialWS(t, n.WSURL("/user/alice"), nil); resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no credentials: got %v, want 401", resp)
	}
	bad := http.Header{}
	bad.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("bob:wrong")))
	if _, resp, _ := tryDialWS(t, n.WSURL("/user/bob"), bad); resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: got %v, want 401", resp)
	}
	// Alice tries to reach Bob's channel every way a request can say "bob".
	var alices []*wsClient
	for _, try := range []struct {
		path   string
		header http.Header
	}{
		{"/user/alice", auth("alice")},
		{"/user/bob", auth("alice")},
		{"/user/bob?user=bob&id=bob", auth("alice")},
		{"/user/%62ob", auth("alice", "X-User", "bob", "X-Forwarded-User", "bob")},
		{"/user/{http.auth.user.id}", auth("alice", "Remote-User", "bob")},
	} {
		alices = append(alices, dialWS(t, n.WSURL(try.path), try.header))
	}
	bob := dialWS(t, n.WSURL("/user/bob"), auth("bob"))
	if got := numsub(t, rdb, "user:bob"); got != 1 {
		t.Fatalf("NUMSUB user:bob = %d, want 1 (one node, bob's client)", got)
	}
	publish(t, rdb, "user:bob", "for bob")
	publish(t, rdb, "user:alice", "for alice")
	if m := bob.Next(t, wait); string(m.Data) != "for bob" {
		t.Fatalf("bob got %v", m)
	}
	for i, c := range alices {
		if m := c.Next(t, wait); string(m.Data) != "for alice" {
			t.Fatalf("alice's client %d got %v, want only her own message", i, m)
		}
	}

	// A query value that looks like a placeholder stays text.
	room := dialWS(t, n.WSURL("/room?name=%7Bhttp.auth.user.id%7D"), nil)
	chans, err := rdb.PubSubChannels(context.Background(), "room:*").Result()
	if err != nil || len(chans) != 1 || chans[0] != "room:{http.auth.user.id}" {
		t.Fatalf("channels %q, %v; want the literal room:{http.auth.user.id}", chans, err)
	}
	room.Close()
}

// Channel names that start with redis_ws: are the module's own (history
// and presence keys, presence events): a client cannot name one through a
// placeholder, on any kind of request, so it cannot read or forge presence
// events; nothing reaches Redis.
func TestReservedChannelNames(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := startNode(t, "node", siteCaddyfile("", `
	redis_ws /rooms/* {
		subscribe room:{http.request.uri.path.1}
		publish room:{http.request.uri.path.1}
		presence
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
	redis_ws /raw/* {
		subscribe {http.request.uri.path.1}
		presence
		redis redis://127.0.0.1:{$REDIS_PORT}
	}`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
	alice := dialEnvelope(t, n.WSURL("/rooms/a"))
	expectSubscribed(t, alice, "room:a")
	events := url.PathEscape(bus.PresenceEvents("room:a"))
	for _, target := range []string{"/raw/" + events, "/raw/redis_ws:x", "/raw/" + url.PathEscape(bus.HistoryKeys("room:a")[1])} {
		forged := `{"type":"join","channel":"room:a","user":"mallory"}`
		for _, kind := range requestKinds {
			if kind.method == http.MethodOptions {
				continue // answers nothing about a channel
			}
			body := ""
			if kind.method == http.MethodPost {
				body = forged
			}
			r := rawRequest(t, n, kind.method, target+kind.query, kind.header, body)
			if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `subscribe: channel name starts with "redis_ws:", which is reserved`) {
				t.Errorf("%s %s: %d %q, want 400 saying the name is reserved", kind.name, target, r.Status, r.Body)
			}
		}
	}
	if chans := rdb.PubSubChannels(context.Background(), "*").Val(); slices.ContainsFunc(chans, func(ch string) bool { return !strings.HasPrefix(ch, "room:a") && ch != bus.PresenceEvents("room:a") }) {
		t.Errorf("channels subscribed: %q, want only room:a's", chans)
	}
	bob := dialWS(t, n.WSURL("/raw/bob"), nil) // a name of the client's own is fine
	bob.Close()
	mustPost(t, n.URL("/rooms/a"), "after the refusals")
	if m := nextEnvelope(t, alice); m.data() != "after the refusals" {
		t.Fatalf("alice got %v first, want the message after the refusals (no forged event)", m)
	}
}

// A refusal names the setting at fault (subscribe, publish, presence user)
// and what is wrong, never the configured value: a channel template would
// tell a client the config.
func TestRefusalsHideTheConfig(t *testing.T) {
	rs := startRedis(t)
	n := startNode(t, "node", siteCaddyfile("", `
	redis_ws /t/* {
		subscribe hidden-prefix:{http.request.uri.path.1}
		publish hidden-out:{http.request.header.X-Out}
		presence {
			user {http.request.header.X-User}
		}
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
	redis_ws /u {
		subscribe hidden-unknown:{http.request.uri.path.-1}
		redis redis://127.0.0.1:{$REDIS_PORT}
	}`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
	out := http.Header{"X-Out": {"o"}}
	for _, tc := range []struct {
		name, method, target string
		header               http.Header
		want                 string
	}{
		{"an empty placeholder", http.MethodPost, "/t/", out, "subscribe: a placeholder of the channel name is empty in this request"},
		{"a control character", http.MethodPost, "/t/a%01b", out, "subscribe: channel name holds a control character"},
		{"a name too long", http.MethodPost, "/t/" + strings.Repeat("x", 300), out, "subscribe: channel name is 314 bytes long; the limit is 256"},
		{"an empty publish placeholder", http.MethodPost, "/t/a", nil, "publish: a placeholder of the channel name is empty in this request"},
		{"a user name too long", http.MethodGet, "/t/a", http.Header{"Accept": {"text/event-stream"}, "X-Out": {"o"}, "X-User": {strings.Repeat("u", 300)}}, "presence user: the name is 300 bytes long; the limit is 256"},
		{"an unknown placeholder", http.MethodPost, "/u", nil, "subscribe: the channel name has a placeholder this request does not know"},
	} {
		r := rawRequest(t, n, tc.method, tc.target, tc.header, "x")
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, tc.want) || strings.Contains(r.Body, "hidden") || strings.Contains(r.Body, "{http.") {
			t.Errorf("%s: %d %q, want 400 saying %q and nothing of the config", tc.name, r.Status, r.Body, tc.want)
		}
	}
}
