package e2e

// History through Caddy and a real Redis: recorded messages keep their
// payloads for raw clients, envelope clients get offsets and their
// subscribed frame, since resumes exactly once across the seam, rewind
// replays, bad resume queries get 400, and what redis-cli sees and sends.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/gorilla/websocket"
)

// historyNodes starts n nodes whose /ws keeps history of chat, with
// directives added, and /plain has none.
func historyNodes(t *testing.T, n int, rs *redisServer, directives string) []*caddyNode {
	t.Helper()
	return startNodes(t, n, siteCaddyfile("", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 100 1h
		`+directives+`
	}
	redis_ws /plain plain {
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
	redis_ws /short short {
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 3 1s
	}
	redis_ws /rooms/* {
		subscribe room:{http.request.uri.path.1} lobby
		publish room:{http.request.uri.path.1}
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 10
	}
	respond /health 200`), rs)
}

func TestHistory(t *testing.T) {
	rs := startRedis(t)
	ns := historyNodes(t, 2, rs, "")
	sender := dialWS(t, ns[0].WSURL("/ws"), nil)
	raw := dialWS(t, ns[1].WSURL("/ws"), nil)
	first := dialEnvelope(t, ns[1].WSURL("/ws"))
	sub := expectSubscribed(t, first, "chat")
	if sub.offset() != 0 || sub.Epoch != "0" || sub.Recovered != nil {
		t.Fatalf("subscribed frame before any message: %v; want 0:0 (no history yet), no recovered", sub)
	}
	text := func(o int64) string { return "m" + strconv.FormatInt(o, 10) }
	for i := int64(1); i <= 5; i++ {
		sender.SendText(t, text(i))
	}
	epoch := historyEpoch(t, rs.Client(t), "chat") // made by the first message

	t.Run("raw clients get the payloads", func(t *testing.T) {
		sequenceTexts(t, raw, "m", 1, 5)
	})
	t.Run("envelope clients get offsets", func(t *testing.T) {
		expectOffsets(t, first, "chat", epoch, 1, 5, text)
	})
	t.Run("subscribed frame has the offset the messages start after", func(t *testing.T) {
		c := dialEnvelope(t, ns[0].WSURL("/ws"))
		// The latest, 5, unless the node was still fanning out the last
		// ones when the client came: then they follow it.
		s := expectSubscribed(t, c, "chat")
		if s.offset() < 1 || s.offset() > 5 || s.Epoch != epoch {
			t.Fatalf("subscribed %v, want offset 5 (or a little less) in epoch %s", s, epoch)
		}
		expectOffsets(t, c, "chat", epoch, s.offset()+1, 5, text)
		c.ExpectNothing(t, 200*time.Millisecond)
	})
	t.Run("since replays what came after, then live", func(t *testing.T) {
		c := dialEnvelope(t, sinceURL(ns[0].WSURL("/ws"), epoch, 2))
		s := expectSubscribed(t, c, "chat")
		if s.Recovered == nil || !*s.Recovered || s.offset() != 5 {
			t.Fatalf("subscribed %v, want recovered true at offset 5", s)
		}
		expectOffsets(t, c, "chat", epoch, 3, 5, text)
		sender.SendText(t, text(6))
		expectOffsets(t, c, "chat", epoch, 6, 6, text)
		c.ExpectNothing(t, 200*time.Millisecond)
		sequenceTexts(t, raw, "m", 6, 1)
		expectOffsets(t, first, "chat", epoch, 6, 6, text)
	})
	t.Run("since at the latest offset replays nothing", func(t *testing.T) {
		c := dialEnvelope(t, sinceURL(ns[1].WSURL("/ws"), epoch, 6))
		if s := expectSubscribed(t, c, "chat"); s.Recovered == nil || !*s.Recovered {
			t.Fatalf("subscribed %v, want recovered true", s)
		}
		c.ExpectNothing(t, 200*time.Millisecond)
	})
	for _, bad := range []struct{ name, since string }{
		{"another epoch", "other:3"},
		{"an offset beyond the latest", epoch + ":99"},
	} {
		t.Run("since with "+bad.name+" is not recovered", func(t *testing.T) {
			c := dialEnvelope(t, ns[1].WSURL("/ws")+"?since="+bad.since)
			s := expectSubscribed(t, c, "chat")
			if s.Recovered == nil || *s.Recovered || s.offset() != 6 || s.Epoch != epoch {
				t.Fatalf("subscribed %v, want recovered false at offset 6 of %s", s, epoch)
			}
			c.ExpectNothing(t, 200*time.Millisecond)
		})
	}
	t.Run("since beyond a trimmed or expired history is not recovered", func(t *testing.T) {
		w := dialEnvelope(t, ns[0].WSURL("/short"))
		expectSubscribed(t, w, "short")
		for i := 1; i <= 200; i++ { // far beyond its size of 3: trimmed
			w.SendText(t, strconv.Itoa(i))
		}
		e := historyEpoch(t, rs.Client(t), "short")
		expectOffsets(t, w, "short", e, 1, 200, nil)
		// resume connects with since and returns the subscribed frame; a
		// recovered client then gets the offsets after it up to 200.
		resume := func(after int64) envelope {
			c := dialEnvelope(t, sinceURL(ns[1].WSURL("/short"), e, after))
			s := expectSubscribed(t, c, "short")
			if s.Recovered != nil && *s.Recovered {
				expectOffsets(t, c, "short", e, after+1, 200, nil)
			}
			c.ExpectNothing(t, 100*time.Millisecond)
			return s
		}
		if s := resume(1); s.Recovered == nil || *s.Recovered || s.offset() != 200 {
			t.Fatalf("since 1 of a history trimmed to its last entries: %v, want recovered false at 200", s)
		}
		if s := resume(199); s.Recovered == nil || !*s.Recovered {
			t.Fatalf("since 199, still held: %v, want recovered true", s)
		}
		rdb := rs.Client(t)
		testkit.Eventually(t, wait, func() bool { return rdb.Exists(context.Background(), bus.HistoryKeys("short")[1]).Val() == 0 }, "the stream of short did not expire after its ttl of 1s")
		if s := resume(199); s.Recovered == nil || *s.Recovered || s.offset() != 200 || s.Epoch != e {
			t.Fatalf("since 199 after the entries expired: %v, want recovered false at 200 of the same epoch", s)
		}
	})
	t.Run("raw clients resume with since", func(t *testing.T) {
		c := dialWS(t, sinceURL(ns[0].WSURL("/ws"), epoch, 4), nil)
		sequenceTexts(t, c, "m", 5, 2)
		c.ExpectNothing(t, 200*time.Millisecond)
	})
	t.Run("rewind replays the last n, then live", func(t *testing.T) {
		c := dialWS(t, ns[1].WSURL("/ws")+"?rewind=2", nil)
		sequenceTexts(t, c, "m", 5, 2)
		e := dialEnvelope(t, ns[0].WSURL("/ws")+"?rewind=1000") // capped at the size: all six
		if s := expectSubscribed(t, e, "chat"); s.offset() != 6 || s.Recovered != nil {
			t.Fatalf("subscribed %v, want offset 6 and no recovered", s)
		}
		expectOffsets(t, e, "chat", epoch, 1, 6, text)
		none := dialWS(t, ns[1].WSURL("/ws")+"?rewind=0", nil)
		sender.SendText(t, text(7))
		sequenceTexts(t, c, "m", 7, 1)
		sequenceTexts(t, none, "m", 7, 1)
		expectOffsets(t, e, "chat", epoch, 7, 7, text)
	})
	t.Run("binary payloads come as data_base64", func(t *testing.T) {
		sender.Send(t, websocket.BinaryMessage, []byte{0xff, 0x00, 0x01})
		e := nextEnvelope(t, first)
		for e.offset() < 8 {
			e = nextEnvelope(t, first)
		}
		if e.Data != nil || e.DataBase64 == nil || string(*e.DataBase64) != "\xff\x00\x01" || e.offset() != 8 {
			t.Fatalf("binary message as %v, want data_base64 of ff0001 at offset 8", e)
		}
		m := raw.Next(t, wait)
		for string(m.Data) != "\xff\x00\x01" {
			m = raw.Next(t, wait)
		}
		if m.Type != websocket.BinaryMessage {
			t.Fatalf("raw client got %v, want the binary frame", m)
		}
	})
	t.Run("redis-cli publish is live, not recorded", func(t *testing.T) {
		out, err := exec.Command("redis-cli", "-p", strconv.Itoa(rs.Port), "publish", "chat", "from redis-cli").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "2" {
			t.Fatalf("redis-cli publish: %v, %q (want 2 receivers)", err, out)
		}
		e := nextEnvelope(t, first)
		if e.data() != "from redis-cli" || e.Offset != nil || e.Epoch != "" {
			t.Fatalf("live message as %v, want data without offset or epoch", e)
		}
		if m := raw.Next(t, wait); string(m.Data) != "from redis-cli" {
			t.Fatalf("raw client got %v", m)
		}
	})
	t.Run("without history the subscribed frame has no position", func(t *testing.T) {
		c := dialEnvelope(t, ns[0].WSURL("/plain"))
		if s := expectSubscribed(t, c, "plain"); s.Offset != nil || s.Epoch != "" {
			t.Fatalf("subscribed %v, want no offset or epoch", s)
		}
		p := dialWS(t, ns[1].WSURL("/plain"), nil)
		p.SendText(t, "\x00rws:forged:1:x") // a live payload that looks recorded
		if e := nextEnvelope(t, c); e.data() != "\x00rws:forged:1:x" || e.Offset != nil {
			t.Fatalf("a live payload that starts like a recorded one came as %v", e)
		}
		if m := p.Next(t, wait); string(m.Data) != "\x00rws:forged:1:x" {
			t.Fatalf("raw client got %v", m)
		}
	})
	t.Run("several channels: one subscribed frame each, since per channel", func(t *testing.T) {
		a := dialWS(t, ns[0].WSURL("/rooms/a"), nil)
		a.SendText(t, "in a")
		if m := a.Next(t, wait); string(m.Data) != "in a" { // recorded by now
			t.Fatalf("got %v", m)
		}
		c := dialEnvelope(t, ns[1].WSURL("/rooms/a"))
		sa, sl := expectSubscribed(t, c, "room:a"), expectSubscribed(t, c, "lobby")
		if sa.offset() != 1 || sl.offset() != 0 {
			t.Fatalf("subscribed %v, %v; want offsets 1 and 0", sa, sl)
		}
		a.SendText(t, "again in a")
		expectOffsets(t, c, "room:a", sa.Epoch, 2, 2, nil) // recorded: a replay has it
		r := dialEnvelope(t, ns[1].WSURL("/rooms/a")+"?since=room:a@"+sa.Epoch+":0")
		s := expectSubscribed(t, r, "room:a")
		if s.Recovered == nil || !*s.Recovered {
			t.Fatalf("subscribed %v, want recovered", s)
		}
		expectOffsets(t, r, "room:a", sa.Epoch, 1, 2, nil)
		if s := expectSubscribed(t, r, "lobby"); s.Recovered != nil {
			t.Fatalf("lobby, not asked to resume: %v", s)
		}
	})
}

// A malformed since or rewind, both, or either without history: 400 with
// a body that says why, before the upgrade.
func TestHistoryBadQuery(t *testing.T) {
	rs := startRedis(t)
	n := historyNodes(t, 1, rs, "")[0]
	for _, tc := range []struct{ path, query, want string }{
		{"/ws", "since=abc", "is not <epoch>:<offset>"},
		{"/ws", "since=e:-1", "is not <epoch>:<offset>"},
		{"/ws", "since=e%20x:1", "is not <epoch>:<offset>"},
		{"/ws", "since=e:1&since=e:2", "given twice"},
		{"/ws", "rewind=x", "is not a number"},
		{"/ws", "rewind=-1", "is not a number"},
		{"/ws", "rewind=1&rewind=2", "more than once"},
		{"/ws", "since=e:1&rewind=1", "cannot be combined"},
		{"/ws", "since=other@e:1", "does not subscribe"},
		{"/rooms/a", "since=e:1", "several channels"},
		{"/plain", "since=e:1", "history, which is off"},
		{"/plain", "rewind=3", "history, which is off"},
	} {
		_, resp, err := tryDialWS(t, n.WSURL(tc.path)+"?"+tc.query, nil)
		if err == nil || resp == nil {
			t.Fatalf("%s?%s: upgraded (%v), want 400", tc.path, tc.query, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s?%s: %s %q, want 400 saying %q", tc.path, tc.query, resp.Status, body, tc.want)
		}
	}
}

// What redis-cli subscribe shows of a recorded message, and the redis-cli
// command of the README that records one.
func TestHistoryRedisCLI(t *testing.T) {
	rs := startRedis(t)
	n := historyNodes(t, 1, rs, "")[0]
	c := dialEnvelope(t, n.WSURL("/ws"))
	expectSubscribed(t, c, "chat")

	next := redisCLISubscribe(t, rs.Port, "chat")
	testkit.Eventually(t, wait, func() bool { return numsub(t, rs.Client(t), "chat") == 2 }, "redis-cli subscribed")

	dialWS(t, n.WSURL("/ws"), nil).SendText(t, "hello")
	epoch := historyEpoch(t, rs.Client(t), "chat")
	if got, want := next(1)[0], fmt.Sprintf("\x00rws:%s:1:hello", epoch); got != want {
		t.Fatalf("redis-cli subscribe shows %q, want %q", got, want)
	}

	cmd := exec.Command("redis-cli", "-p", strconv.Itoa(rs.Port), "--eval", "internal/bus/lua/publish.lua",
		"redis_ws:{chat}:m", "redis_ws:{chat}:s", ",", "chat", "100", "3600000", "2592000000", "0", "", "0", "", "1", "from redis-cli")
	if res, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(res), epoch) {
		t.Fatalf("redis-cli --eval internal/bus/lua/publish.lua: %v, %q", err, res)
	}
	expectOffsets(t, c, "chat", epoch, 1, 2, func(o int64) string { return map[int64]string{1: "hello", 2: "from redis-cli"}[o] })
}
