package e2e

// Frame types end to end: what a client sends as binary reaches every
// client as binary, and text as text, whatever the bytes: live and
// recorded, raw, envelope and event-stream clients, compressed or not,
// replayed and filled by the node; redis-cli publish and POST keep their
// rule, and redis-cli subscribe shows the marks the README describes.

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/chatjson"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/gorilla/websocket"
)

// typed is a message with the frame type it was sent with.
type typed struct {
	typ     int
	payload string
}

func (m typed) String() string {
	if m.typ == websocket.BinaryMessage {
		return fmt.Sprintf("binary %q", m.payload)
	}
	return fmt.Sprintf("text %q", m.payload)
}

func binaryMsg(p string) typed { return typed{websocket.BinaryMessage, p} }
func textMsg(p string) typed   { return typed{websocket.TextMessage, p} }

// sentTyped are the messages the test's clients send, each as its type:
// binary ones whose bytes are valid UTF-8 are those the rule gets wrong
// (Autobahn 1.2.1 is the empty one, 12.x the long compressed ones).
var sentTyped = []typed{
	binaryMsg(""),
	binaryMsg("hi"),
	binaryMsg("\x00rws:::x"),
	binaryMsg("\xff\xfe\x00"),
	binaryMsg(chatjson.Message(2048, 1)),
	textMsg(""),
	textMsg("hi"),
	textMsg("\x00rwsb:::y"),
	textMsg("\x00rws:e:1:z"),
	textMsg("é"),
	textMsg(chatjson.Message(2048, 2)),
}

// expectTyped has c read want: a raw client frames of each message's type,
// an envelope client "data" for text and "data_base64" for binary.
func expectTyped(t *testing.T, c *wsClient, want ...typed) {
	t.Helper()
	for i, m := range c.Collect(t, len(want), wait) {
		got := typed{m.Type, string(m.Data)}
		if c.Conn.Subprotocol() == protocol.Subprotocol {
			e := decodeEnvelope(t, m)
			switch {
			case e.Data != nil && e.DataBase64 == nil:
				got = textMsg(*e.Data)
			case e.Data == nil && e.DataBase64 != nil:
				got = binaryMsg(string(*e.DataBase64))
			default:
				t.Fatalf("%s: envelope %d: %s, want data or data_base64", c.URL, i, m.Data)
			}
		}
		if got != want[i] {
			t.Fatalf("%s: message %d: %.80s, want %.80s", c.URL, i, got, want[i])
		}
	}
}

// expectTypedEvents has s read want: text as a message event, binary as an
// event binary in base64.
func expectTypedEvents(t *testing.T, s *sseClient, want ...typed) {
	t.Helper()
	for i, e := range s.Collect(t, len(want), wait) {
		got := textMsg(e.Data)
		if e.Type == protocol.EventBinary {
			b, err := base64.StdEncoding.DecodeString(e.Data)
			if err != nil {
				t.Fatalf("%s: event %d: %v", s.URL, i, err)
			}
			got = binaryMsg(string(b))
		}
		if got != want[i] {
			t.Fatalf("%s: event %d: %.80s, want %.80s", s.URL, i, got, want[i])
		}
	}
}

func TestFrameTypes(t *testing.T) {
	rs := startRedis(t)
	ns := startNodes(t, 2, siteCaddyfile("", `
	redis_ws /live live {
		redis redis://127.0.0.1:{$REDIS_PORT}
		compress
	}
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 100
		compress
	}`), rs)
	base := ns[1].BaseGoroutines(t)
	rdb := rs.Client(t)
	cliLive, cliChat := redisCLISubscribe(t, rs.Port, "live"), redisCLISubscribe(t, rs.Port, "chat")

	// Each route: the sender on node 1, and on node 2 a plain raw client,
	// a raw and an envelope client that agreed to compression, an event
	// stream.
	type route struct {
		sender, raw, zipped, env *wsClient
		sse                      *sseClient
	}
	open := func(path string) route {
		r := route{sender: dialWS(t, ns[0].WSURL(path), nil), raw: dialWS(t, ns[1].WSURL(path), nil)}
		r.zipped, _ = dialDeflate(t, ns[1].WSURL(path), true, nil, agreed)
		r.env, _ = dialDeflate(t, ns[1].WSURL(path), true, envelopeHeader(), agreed)
		r.sse = dialSSE(t, ns[1].URL(path), nil)
		return r
	}
	live, chat := open("/live"), open("/ws")
	expectSubscribed(t, live.env, "live")
	if s := expectSubscribed(t, chat.env, "chat"); s.Epoch != frame.NoHistory.Epoch || s.offset() != 0 {
		t.Fatalf("subscribed %v, want 0:0: chat has no history yet", s)
	}
	testkit.Eventually(t, wait, func() bool { return numsub(t, rdb, "live") == 3 && numsub(t, rdb, "chat") == 3 }, "nodes and redis-cli subscribed")
	expect := func(r route, want ...typed) {
		t.Helper()
		for _, c := range []*wsClient{r.sender, r.raw, r.zipped, r.env} {
			expectTyped(t, c, want...)
		}
		expectTypedEvents(t, r.sse, want...)
	}

	for _, r := range []route{live, chat} {
		for _, m := range sentTyped {
			r.sender.Send(t, m.typ, []byte(m.payload))
		}
		expect(r, sentTyped...)
	}

	epoch := historyEpoch(t, rdb, "chat") // made by the first recorded message
	t.Run("redis-cli subscribe shows the payloads and their marks", func(t *testing.T) {
		gotLive, gotChat := cliLive(len(sentTyped)), cliChat(len(sentTyped))
		for i, m := range sentTyped {
			marked := m.typ == websocket.BinaryMessage && m.payload != "\xff\xfe\x00"
			wantLive := m.payload
			switch {
			case marked:
				wantLive = "\x00rwsb:::" + m.payload
			case strings.HasPrefix(m.payload, "\x00rws"):
				wantLive = "\x00rws:::" + m.payload
			}
			wantChat := fmt.Sprintf("\x00rws:%s:%d:%s", epoch, i+1, m.payload)
			if marked {
				wantChat = fmt.Sprintf("\x00rwsb:%s:%d:%s", epoch, i+1, m.payload)
			}
			if gotLive[i] != wantLive || gotChat[i] != wantChat {
				t.Errorf("%s: redis-cli shows %.80q live and %.80q recorded, want %.80q and %.80q", m, gotLive[i], gotChat[i], wantLive, wantChat)
			}
		}
	})

	t.Run("a replay keeps the types", func(t *testing.T) {
		url := ns[0].WSURL("/ws") + "?rewind=" + strconv.Itoa(len(sentTyped))
		expectTyped(t, dialWS(t, url, nil), sentTyped...)
		env := dialEnvelope(t, url)
		expectSubscribed(t, env, "chat")
		expectTyped(t, env, sentTyped...)
		expectTypedEvents(t, dialSSE(t, ns[0].URL("/ws")+"?rewind="+strconv.Itoa(len(sentTyped)), nil), sentTyped...)
	})

	t.Run("a gap filled by the node keeps the types", func(t *testing.T) {
		// The README's redis-cli command records a binary message that is
		// valid UTF-8, published to another channel: the nodes see offset
		// 13 after 11 and fill 12 from the stream.
		cmd := exec.Command("redis-cli", "-p", strconv.Itoa(rs.Port), "--eval", "internal/bus/lua/publish.lua",
			"redis_ws:{chat}:m", "redis_ws:{chat}:s", ",", "elsewhere", "100", "3600000", "2592000000", "0", "", "0", "b", "1", "filled")
		if res, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("redis-cli --eval internal/bus/lua/publish.lua: %v, %q", err, res)
		}
		chat.sender.SendText(t, "after")
		expect(chat, binaryMsg("filled"), textMsg("after"))
		for _, n := range ns {
			if filled := scrapeMetrics(t, n)["caddy_redis_ws_gaps_filled_total"]; filled != 1 {
				t.Errorf("%s: %v gaps filled, want 1", n.Name, filled)
			}
		}
	})

	t.Run("publish.lua refuses types that do not match the payloads", func(t *testing.T) {
		res, _ := exec.Command("redis-cli", "-p", strconv.Itoa(rs.Port), "--eval", "internal/bus/lua/publish.lua",
			"redis_ws:{chat}:m", "redis_ws:{chat}:s", ",", "chat", "100", "3600000", "2592000000", "0", "", "0", "bt", "1", "one").CombinedOutput()
		if !strings.Contains(string(res), "types: one character per payload") {
			t.Fatalf("redis-cli --eval internal/bus/lua/publish.lua with 2 types for 1 payload: %q", res)
		}
	})

	t.Run("redis-cli publish and POST keep the rule; octet-stream is binary", func(t *testing.T) {
		publish(t, rdb, "live", "plain")
		publish(t, rdb, "live", "\xff")
		for _, p := range []struct {
			body, contentType string
		}{
			{"posted", ""},
			{"\xfe", ""},
			{"posted binary", "application/octet-stream"},
			{"", "Application/Octet-Stream; x=y"},
			{"form", "application/x-www-form-urlencoded"},
		} {
			header := http.Header{}
			if p.contentType != "" {
				header.Set("Content-Type", p.contentType)
			}
			if r := postMessage(t, ns[0].URL("/live"), p.body, header); r.Status != http.StatusOK {
				t.Fatalf("POST %q: %d %q", p.body, r.Status, r.Body)
			}
		}
		expect(live, textMsg("plain"), binaryMsg("\xff"), textMsg("posted"), binaryMsg("\xfe"),
			binaryMsg("posted binary"), binaryMsg(""), textMsg("form"))
	})

	for _, r := range []route{live, chat} {
		for _, c := range []*wsClient{r.sender, r.raw, r.zipped, r.env} {
			c.Close()
		}
		r.sse.Close()
	}
	ns[1].GoroutinesBackTo(t, base)
}
