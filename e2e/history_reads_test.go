package e2e

// Reading the history: requests that only read (upgrades, event streams,
// presence queries) and refused ones write nothing to Redis and refused
// ones ask it nothing; 0:0, the position of a channel without history; a
// replay holds at most send_queue; a since that cannot be served answers
// without reading entries; offsets up to the int64 maximum; the node's
// fills from a channel without history, in pages; the read slots.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
)

// readsCaddyfile has a history route of rooms, one with presence as well,
// and a chat whose send_queue is small.
func readsCaddyfile() string {
	return siteCaddyfile("", `
	redis_ws /rooms/* {
		subscribe room:{http.request.uri.path.1}
		publish room:{http.request.uri.path.1}
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 100
	}
	redis_ws /people/* {
		subscribe people:{http.request.uri.path.1}
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 100
		presence
	}
	redis_ws /big/* {
		subscribe big:{http.request.uri.path.1}
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 1000
		send_queue 8MiB
	}
	redis_ws /small chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 100
		send_queue 4KiB
	}
	redis_ws /short short {
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 3
	}
	redis_ws /pair {
		subscribe pa pb
		publish pa
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 100
		send_queue 4KiB
	}
	redis_ws /pb pb {
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 100
	}
	respond /health 200`)
}

func readsNode(t *testing.T, rs *redisServer) *caddyNode {
	t.Helper()
	return startNode(t, "node", readsCaddyfile(), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
}

// readRequest is one kind of request that TestReadsWriteNothing sends to
// new rooms; do returns why the answer is not the one expected.
type readRequest struct {
	name string
	do   func(n *caddyNode, room string) error
}

// TestReadsWriteNothing sends read-only and refused requests to new rooms
// of history routes: WebSocket upgrades (raw, envelope, rewind, since),
// event streams, presence queries, and upgrades refused for a missing key,
// a bad version, a PUT, a malformed since or rewind. The refused ones make
// Redis run no SUBSCRIBE and no script, and none of them leaves a key:
// DBSIZE is what it was. REDISWS_READS sets how many (default 10,000).
func TestReadsWriteNothing(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := readsNode(t, rs)
	base := n.BaseGoroutines(t)
	keys := dbsize(t, rdb)
	total := envInt(t, "REDISWS_READS", 10_000)

	refused := []readRequest{
		{"an upgrade without Sec-WebSocket-Key", func(n *caddyNode, room string) error {
			return expectHandshakeRefused(n, upgradeRequest("GET", "/rooms/"+room, "Sec-WebSocket-Version: 13"), 400, "Sec-WebSocket-Key")
		}},
		{"an upgrade of version 8", func(n *caddyNode, room string) error {
			return expectHandshakeRefused(n, upgradeRequest("GET", "/rooms/"+room, "Sec-WebSocket-Version: 8", validKey), 400, "13 not found")
		}},
		{"a PUT upgrade", func(n *caddyNode, room string) error {
			return expectHandshakeRefused(n, upgradeRequest("PUT", "/rooms/"+room, "Sec-WebSocket-Version: 13", validKey), 405, "must be a GET")
		}},
		{"a malformed since", func(n *caddyNode, room string) error {
			return expectRefused(n, upgradeRequest("GET", "/rooms/"+room+"?since=abc", "Sec-WebSocket-Version: 13", validKey), 400, "is not <epoch>:<offset>")
		}},
		{"a malformed rewind on a presence route", func(n *caddyNode, room string) error {
			return expectRefused(n, upgradeRequest("GET", "/people/"+room+"?rewind=x", "Sec-WebSocket-Version: 13", validKey), 400, "is not a number")
		}},
		{"an upgrade without key on a presence route", func(n *caddyNode, room string) error {
			return expectHandshakeRefused(n, upgradeRequest("GET", "/people/"+room, "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: short"), 400, "Sec-WebSocket-Key")
		}},
	}
	accepted := []readRequest{
		{"an upgrade", func(n *caddyNode, room string) error {
			conn, err := openWS(n, "/rooms/"+room, nil)
			if err == nil {
				_ = conn.Close()
			}
			return err
		}},
		{"an envelope upgrade", func(n *caddyNode, room string) error {
			return expectSubscribedAt(n, "/rooms/"+room, "room:"+room, "0:0", nil)
		}},
		{"a rewind", func(n *caddyNode, room string) error {
			return expectSubscribedAt(n, "/rooms/"+room+"?rewind=5", "room:"+room, "0:0", nil)
		}},
		{"a since 0:0", func(n *caddyNode, room string) error {
			return expectSubscribedAt(n, "/rooms/"+room+"?since=0:0", "room:"+room, "0:0", new(true))
		}},
		{"a since of another epoch", func(n *caddyNode, room string) error {
			return expectSubscribedAt(n, "/rooms/"+room+"?since=gone:3", "room:"+room, "0:0", new(false))
		}},
		{"an event stream", func(n *caddyNode, room string) error {
			return expectOpeningID(n, "/rooms/"+room, nil, "0:0")
		}},
		{"an event stream with Last-Event-ID", func(n *caddyNode, room string) error {
			return expectOpeningID(n, "/rooms/"+room, http.Header{"Last-Event-ID": {"0:0"}}, "0:0")
		}},
		{"a presence query", func(n *caddyNode, room string) error {
			req, _ := http.NewRequest(http.MethodGet, n.URL("/people/"+room), nil)
			req.Header.Set("Accept", "application/json")
			resp, err := noKeepAliveClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"people:`+room+`":{"connections":0`) {
				return fmt.Errorf("%d %q", resp.StatusCode, body)
			}
			return nil
		}},
	}
	share := total * len(refused) / (len(refused) + len(accepted))
	before := commandCalls(t, rdb)
	sendReads(t, n, refused, 0, share)
	after := commandCalls(t, rdb)
	for _, cmd := range []string{"subscribe", "ssubscribe", "eval", "evalsha", "hset", "xadd"} {
		if after[cmd] != before[cmd] {
			t.Errorf("%d refused requests made Redis run %s %d times", share, cmd, after[cmd]-before[cmd])
		}
	}
	sendReads(t, n, accepted, share, total-share)
	n.GoroutinesBackTo(t, base) // the node's own reads of the new channels are done
	final := commandCalls(t, rdb)
	got := dbsize(t, rdb)
	scripts := final["evalsha"] + final["eval"] - after["evalsha"] - after["eval"]
	t.Logf("%d requests to new rooms (%d refused): DBSIZE %d before, %d after; the read-only ones made Redis run SUBSCRIBE %d times and scripts %d times",
		total, share, keys, got, final["subscribe"]-after["subscribe"], scripts)
	if got != keys {
		t.Errorf("requests that only read, or were refused, left %d keys in Redis", got-keys)
	}
	if final["subscribe"] == after["subscribe"] || scripts < int64(total-share) {
		t.Errorf("the read-only requests did not all reach Redis")
	}
}

// sendReads sends count requests from 8 clients at once, request i of
// kinds[i%len(kinds)] to room r<from+i>, and fails on the first answer
// that is not the one expected.
func sendReads(t *testing.T, n *caddyNode, kinds []readRequest, from, count int) {
	t.Helper()
	var next atomic.Int64
	var failed atomic.Pointer[string]
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for failed.Load() == nil {
				i := int(next.Add(1)) - 1
				if i >= count {
					return
				}
				k := kinds[i%len(kinds)]
				room := "r" + strconv.Itoa(from+i)
				if err := k.do(n, room); err != nil {
					msg := fmt.Sprintf("%s to room %s: %v", k.name, room, err)
					failed.CompareAndSwap(nil, &msg)
				}
			}
		}()
	}
	wg.Wait()
	if msg := failed.Load(); msg != nil {
		t.Fatal(*msg)
	}
}

// validKey is a Sec-WebSocket-Key line (RFC 6455's example).
const validKey = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="

// upgradeRequest is an upgrade request as bytes, with the header lines given.
func upgradeRequest(method, path string, lines ...string) string {
	return method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		strings.Join(append(lines, ""), "\r\n") + "\r\n"
}

// expectRefused sends a request on a connection of its own and checks the
// status and that the body says why.
func expectRefused(n *caddyNode, request string, status int, reason string) error {
	_, err := refusedAnswer(n, request, status, reason)
	return err
}

// expectHandshakeRefused is expectRefused for an upgrade that gorilla
// would refuse, with its headers: the version the server speaks, and for a
// 405 the methods.
func expectHandshakeRefused(n *caddyNode, request string, status int, reason string) error {
	h, err := refusedAnswer(n, request, status, reason)
	switch {
	case err != nil:
		return err
	case h.Get("Sec-WebSocket-Version") != "13":
		return fmt.Errorf("%d without Sec-WebSocket-Version: 13", status)
	case status == http.StatusMethodNotAllowed && h.Get("Allow") == "":
		return fmt.Errorf("%d without Allow", status)
	}
	return nil
}

// refusedAnswer sends a request and checks its answer; it returns the
// answer's header.
func refusedAnswer(n *caddyNode, request string, status int, reason string) (http.Header, error) {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.Port), wait)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(conn, request); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != status || !strings.Contains(string(body), reason) {
		return nil, fmt.Errorf("%s %q, want %d saying %q", resp.Status, body, status, reason)
	}
	return resp.Header, nil
}

// openWS upgrades, or says why not.
func openWS(n *caddyNode, path string, header http.Header) (*websocket.Conn, error) {
	conn, resp, err := wsDialer.Dial(n.WSURL(path), header)
	if err != nil && resp != nil {
		body, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("%v: %s %q", err, resp.Status, body)
	}
	return conn, err
}

// expectSubscribedAt upgrades as an envelope client and checks its
// subscribed frame: channel, position and recovered (nil: absent).
func expectSubscribedAt(n *caddyNode, path, ch, at string, recovered *bool) error {
	conn, err := openWS(n, path, envelopeHeader())
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	_, data, err := conn.ReadMessage()
	if err != nil {
		return err
	}
	e, err := readEnvelope(data)
	if err != nil {
		return err
	}
	pos, _ := e.Position()
	ok := e.Type == protocol.TypeSubscribed && e.Channel == ch && pos.String() == at &&
		(recovered == nil) == (e.Recovered == nil) && (recovered == nil || *recovered == *e.Recovered)
	if !ok {
		want := "absent"
		if recovered != nil {
			want = strconv.FormatBool(*recovered)
		}
		return fmt.Errorf("first frame %s, want subscribed to %s at %s, recovered %s", data, ch, at, want)
	}
	return nil
}

// expectOpeningID opens an event stream and checks its first line.
func expectOpeningID(n *caddyNode, path string, header http.Header, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := openStream(ctx, sseHTTP, n.URL(path), header)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "id: "+id+"\n" {
		return fmt.Errorf("first line %q (%v), want the id %s", line, err, id)
	}
	return nil
}

func dbsize(t testing.TB, rdb *redis.Client) int64 {
	t.Helper()
	n, err := rdb.DBSize(context.Background()).Result()
	if err != nil {
		t.Fatalf("DBSIZE: %v", err)
	}
	return n
}

// commandCalls is how many times Redis ran each command, scripts' own
// commands included (INFO commandstats).
func commandCalls(t testing.TB, rdb *redis.Client) map[string]int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	calls := make(map[string]int64)
	for _, line := range strings.Split(info, "\r\n") {
		name, stats, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(stats[:strings.IndexByte(stats+",", ',')], 10, 64)
		calls[name] = n
	}
	return calls
}

// netOutput is the bytes Redis has sent to its clients so far.
func netOutput(t testing.TB, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatalf("INFO stats: %v", err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_net_output_bytes:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatalf("INFO stats has no total_net_output_bytes: %q", info)
	return 0
}

// TestResumeFromNoHistory: 0:0 is the position of a channel without
// history, and every epoch follows it from its offset 1. A client told 0:0
// resumes from there once the channel has messages, unless the stream no
// longer holds the first; 0:N with N > 0 is not a position of any channel.
func TestResumeFromNoHistory(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := readsNode(t, rs)
	c := dialEnvelope(t, n.WSURL("/rooms/a"))
	if s := expectSubscribed(t, c, "room:a"); s.Epoch != "0" || s.offset() != 0 {
		t.Fatalf("subscribed %v, want 0:0", s)
	}
	for i := 1; i <= 3; i++ {
		c.SendText(t, "m"+strconv.Itoa(i))
	}
	epoch := historyEpoch(t, rdb, "room:a")
	expectOffsets(t, c, "room:a", epoch, 1, 3, nil)

	t.Run("since 0:0 replays every message of the epoch", func(t *testing.T) {
		r := dialEnvelope(t, n.WSURL("/rooms/a?since=0:0"))
		if s := expectSubscribed(t, r, "room:a"); s.Recovered == nil || !*s.Recovered || s.Epoch != epoch || s.offset() != 3 {
			t.Fatalf("subscribed %v, want recovered at %s:3", s, epoch)
		}
		expectOffsets(t, r, "room:a", epoch, 1, 3, func(o int64) string { return "m" + strconv.FormatInt(o, 10) })
		r.ExpectNothing(t, 200*time.Millisecond)
		s := dialSSE(t, n.URL("/rooms/a"), http.Header{"Last-Event-ID": {"0:0"}})
		for i, e := range s.Collect(t, 3, wait) {
			if want := (sseEvent{"message", "m" + strconv.Itoa(i+1), epoch + ":" + strconv.Itoa(i+1)}); e != want {
				t.Fatalf("event %d: %v, want %v", i, e, want)
			}
		}
	})
	t.Run("0:N is no position", func(t *testing.T) {
		for _, path := range []string{"/rooms/a?since=0:1", "/rooms/new?since=0:1"} {
			r := dialEnvelope(t, n.WSURL(path))
			s := nextEnvelope(t, r)
			if s.Type != protocol.TypeSubscribed || s.Recovered == nil || *s.Recovered {
				t.Fatalf("%s: %v, want recovered false", path, s)
			}
			r.ExpectNothing(t, 200*time.Millisecond)
		}
	})
	t.Run("since 0:0 of a trimmed stream is not recovered", func(t *testing.T) {
		w := dialEnvelope(t, n.WSURL("/short"))
		expectSubscribed(t, w, "short")
		for i := 1; i <= 200; i++ { // far beyond its size of 3: trimmed
			w.SendText(t, strconv.Itoa(i))
		}
		e := historyEpoch(t, rdb, "short")
		expectOffsets(t, w, "short", e, 1, 200, nil)
		r := dialEnvelope(t, n.WSURL("/short?since=0:0"))
		if s := expectSubscribed(t, r, "short"); s.Recovered == nil || *s.Recovered || s.Epoch != e || s.offset() != 200 {
			t.Fatalf("subscribed %v, want recovered false at %s:200", s, e)
		}
		r.ExpectNothing(t, 200*time.Millisecond)
	})
	t.Run("what 0:0 cannot tell: an epoch made and lost while the client was away", func(t *testing.T) {
		rs.Restart(t) // without persistence: every history is gone
		testkit.Eventually(t, wait, func() bool { return dbsize(t, rdb) == 0 && !c.Closed() }, "the history is gone")
		testkit.Eventually(t, wait, func() bool {
			s := dialEnvelope(t, n.WSURL("/rooms/a"))
			defer s.Close()
			return expectSubscribed(t, s, "room:a").Epoch == "0"
		}, "the node reads Redis again")
		c.SendText(t, "after")
		next := historyEpoch(t, rdb, "room:a")
		r := dialEnvelope(t, n.WSURL("/rooms/a?since=0:0"))
		if s := expectSubscribed(t, r, "room:a"); s.Recovered == nil || !*s.Recovered || s.Epoch != next || next == epoch {
			t.Fatalf("subscribed %v, want recovered at %s:1, a new epoch", s, next)
		}
		expectOffsets(t, r, "room:a", next, 1, 1, func(int64) string { return "after" })
	})
}

// TestReplayBound: a replay holds at most send_queue bytes of messages
// (4 KiB here, messages of 1,000 bytes): a since whose messages do not fit
// is not recovered and goes on live, without a close; a rewind gets the
// newest that fit. A since of another epoch, beyond the latest or of a
// trimmed stream is answered without Redis sending a single entry.
func TestReplayBound(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := readsNode(t, rs)
	payload := func(o int64) string { return fmt.Sprintf("%03d", o) + strings.Repeat("x", 997) }
	for i := int64(1); i <= 10; i++ {
		mustPost(t, n.URL("/small"), payload(i))
	}
	epoch := historyEpoch(t, rdb, "chat")

	t.Run("rewind gets the newest that fit", func(t *testing.T) {
		c := dialEnvelope(t, n.WSURL("/small?rewind=10"))
		if s := expectSubscribed(t, c, "chat"); s.offset() != 10 || s.Recovered != nil {
			t.Fatalf("subscribed %v, want offset 10", s)
		}
		expectOffsets(t, c, "chat", epoch, 7, 10, payload) // 4,000 bytes of 4,096
		c.ExpectNothing(t, 200*time.Millisecond)
		s := dialSSE(t, n.URL("/small?rewind=10"), nil)
		for i, e := range s.Collect(t, 4, wait) {
			if e.ID != epoch+":"+strconv.Itoa(7+i) || e.Data != payload(int64(7+i)) {
				t.Fatalf("event %d: %v, want offset %d", i, e, 7+i)
			}
		}
	})
	t.Run("a since that fits is recovered", func(t *testing.T) {
		c := dialEnvelope(t, sinceURL(n.WSURL("/small"), epoch, 6))
		if s := expectSubscribed(t, c, "chat"); s.Recovered == nil || !*s.Recovered {
			t.Fatalf("subscribed %v, want recovered", s)
		}
		expectOffsets(t, c, "chat", epoch, 7, 10, payload)
	})
	t.Run("a since that does not fit goes on live", func(t *testing.T) {
		c := dialEnvelope(t, sinceURL(n.WSURL("/small"), epoch, 5))
		if s := expectSubscribed(t, c, "chat"); s.Recovered == nil || *s.Recovered || s.offset() != 10 || s.Epoch != epoch {
			t.Fatalf("subscribed %v, want recovered false at %s:10", s, epoch)
		}
		s := dialSSE(t, n.URL("/small"), http.Header{"Last-Event-ID": {epoch + ":5"}})
		if e := s.Next(t, wait); e.Type != "reset" || e.ID != epoch+":10" {
			t.Fatalf("first event %v, want a reset at %s:10", e, epoch)
		}
		mustPost(t, n.URL("/small"), payload(11))
		expectOffsets(t, c, "chat", epoch, 11, 11, payload)
		if e := s.Next(t, wait); e.ID != epoch+":11" {
			t.Fatalf("event %v, want offset 11", e)
		}
		if c.Closed() {
			t.Fatalf("closed (%s)", c.closeDesc())
		}
	})
	t.Run("the channels of a replay share send_queue", func(t *testing.T) {
		for i := int64(1); i <= 3; i++ {
			mustPost(t, n.URL("/pair"), payload(i))
			mustPost(t, n.URL("/pb"), payload(i))
		}
		ea, eb := historyEpoch(t, rdb, "pa"), historyEpoch(t, rdb, "pb")
		c := dialEnvelope(t, n.WSURL("/pair?since=pa@"+ea+":0&since=pb@"+eb+":0"))
		if s := expectSubscribed(t, c, "pa"); s.Recovered == nil || !*s.Recovered {
			t.Fatalf("subscribed %v, want recovered", s)
		}
		expectOffsets(t, c, "pa", ea, 1, 3, payload) // 3,000 bytes of 4,096
		if s := expectSubscribed(t, c, "pb"); s.Recovered == nil || *s.Recovered || s.offset() != 3 {
			t.Fatalf("subscribed %v, want recovered false at 3: 3,000 more bytes do not fit", s)
		}
		r := dialEnvelope(t, n.WSURL("/pair?rewind=3"))
		expectSubscribed(t, r, "pa")
		expectOffsets(t, r, "pa", ea, 1, 3, payload)
		expectSubscribed(t, r, "pb")
		expectOffsets(t, r, "pb", eb, 3, 3, payload) // the newest that fits in the 1,096 bytes left
		r.ExpectNothing(t, 200*time.Millisecond)
	})
	t.Run("a since that cannot be served reads no entry", func(t *testing.T) {
		w := dialWS(t, n.WSURL("/short"), nil)
		for i := int64(1); i <= 20; i++ { // far beyond its size of 3: trimmed
			w.SendText(t, payload(i))
		}
		sequenceCount(t, w, 20)
		short := historyEpoch(t, rdb, "short")
		if first := rdb.XRange(context.Background(), bus.HistoryKeys("short")[1], "-", "+").Val(); len(first) == 0 || first[0].ID == "1-0" {
			t.Fatalf("the stream of short holds %v: not trimmed", first)
		}
		const requests = 20
		for _, since := range []string{"/small?since=gone:0", "/small?since=" + epoch + ":99", "/short?since=" + short + ":0"} {
			sent := netOutput(t, rdb)
			for range requests {
				c := dialEnvelope(t, n.WSURL(since))
				if s := nextEnvelope(t, c); s.Recovered == nil || *s.Recovered {
					t.Fatalf("%s: %v, want recovered false", since, s)
				}
				c.Close()
			}
			// Less than one entry of 1,000 bytes per request, even with the
			// INFO answer counted.
			if d := netOutput(t, rdb) - sent; d >= requests*1000 {
				t.Fatalf("%s: Redis sent %d bytes for %d requests that replay nothing", since, d, requests)
			}
		}
	})
}

// sequenceCount reads n messages.
func sequenceCount(t *testing.T, c *wsClient, n int) {
	t.Helper()
	c.Collect(t, n, wait)
}

// TestHugeOffsets: a since or Last-Event-ID with an offset up to the int64
// maximum is answered recovered:false (a reset event for a stream), as any
// offset beyond the latest; one beyond the maximum is a 400.
func TestHugeOffsets(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := readsNode(t, rs)
	sender := dialWS(t, n.WSURL("/rooms/a"), nil)
	sender.SendText(t, "one")
	sequenceCount(t, sender, 1)
	epoch := historyEpoch(t, rdb, "room:a")
	for _, pos := range []string{epoch + ":100000000000000", epoch + ":9223372036854775807", "0:9223372036854775807"} {
		for _, room := range []string{"a", "new"} {
			c := dialEnvelope(t, n.WSURL("/rooms/"+room+"?since="+pos))
			if s := nextEnvelope(t, c); s.Type != protocol.TypeSubscribed || s.Recovered == nil || *s.Recovered {
				t.Fatalf("since %s in room %s: %v, want recovered false", pos, room, s)
			}
			s := dialSSE(t, n.URL("/rooms/"+room), http.Header{"Last-Event-ID": {pos}})
			if e := s.Next(t, wait); e.Type != "reset" {
				t.Fatalf("Last-Event-ID %s in room %s: %v, want a reset", pos, room, e)
			}
		}
	}
	beyond := epoch + ":9223372036854775808"
	if _, resp, err := tryDialWS(t, n.WSURL("/rooms/a?since="+beyond), nil); err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("since %s: %v, want 400", beyond, resp)
	}
	var refused *sseRefused
	if _, err := tryDialSSE(t, sseHTTP, n.URL("/rooms/a"), http.Header{"Last-Event-ID": {beyond}}); !errors.As(err, &refused) || refused.Status != http.StatusBadRequest {
		t.Fatalf("Last-Event-ID %s: %v, want 400", beyond, err)
	}
}

// TestGapFillFromNoHistory: a node that subscribed to a channel without
// history, then lost its subscription while 40 messages of 60 KB were
// recorded, fills them all when it is back, in pages of at most
// fillPageBytes (so a fill never holds a whole stream).
func TestGapFillFromNoHistory(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := readsNode(t, rs)
	c := dialWS(t, n.WSURL("/big/a"), nil) // raw: no read of its own
	testkit.Eventually(t, wait, func() bool {
		calls := commandCalls(t, rdb)
		return calls["eval"]+calls["evalsha"] > 0
	}, "the node did not read the position of the new channel")
	if got := dbsize(t, rdb); got != 0 {
		t.Fatalf("reading the position left %d keys", got)
	}

	n.Signal(t, syscall.SIGSTOP)
	if err := rdb.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err(); err != nil {
		n.Signal(t, syscall.SIGCONT)
		t.Fatal(err)
	}
	const messages = 40
	payload := func(i int) string { return fmt.Sprintf("%02d", i) + strings.Repeat("y", 60_000) }
	args := []any{"big:a", 1000, time.Hour.Milliseconds(), bus.MinMetaTTL.Milliseconds(), 0, "", 0, "", 1} // no floor, no types, may create
	for i := 1; i <= messages; i++ {
		args = append(args, payload(i))
	}
	err := bus.PublishScript.Run(context.Background(), rdb, bus.HistoryKeys("big:a"), args...).Err()
	before := commandCalls(t, rdb)
	n.Signal(t, syscall.SIGCONT)
	if err != nil {
		t.Fatal(err)
	}

	for i, m := range c.Collect(t, messages, wait) {
		if string(m.Data) != payload(i+1) {
			t.Fatalf("message %d: %.10q…, want %.10q…", i+1, m.Data, payload(i+1))
		}
	}
	c.ExpectNothing(t, 200*time.Millisecond)
	m := scrapeMetrics(t, n)
	if m["caddy_redis_ws_gaps_filled_total"] != 1 || m["caddy_redis_ws_gaps_unfillable_total"] != 0 {
		t.Fatalf("gaps filled %v, unfillable %v; want 1 and 0", m["caddy_redis_ws_gaps_filled_total"], m["caddy_redis_ws_gaps_unfillable_total"])
	}
	after := commandCalls(t, rdb)
	if reads := after["evalsha"] + after["eval"] - before["evalsha"] - before["eval"]; reads < messages*60_000/bus.FillPageBytes+1 {
		t.Fatalf("the fill read %d pages, want one per %d bytes at most", reads, bus.FillPageBytes)
	}
}

// TestHistoryReadSlots: with every client slot taken, a client's read waits
// readSlotWait and is refused (the node answers it 503), while a fill still
// reads in its own slots; a freed slot serves the next client.
func TestHistoryReadSlots(t *testing.T) {
	rs := startRedis(t)
	b := bus.NewBroker(bus.BrokerOptions{Client: rs.Client(t), Name: rs.Addr})
	t.Cleanup(func() { _ = b.Close() })
	for range bus.ClientReadSlots {
		b.ClientReads <- struct{}{}
	}
	q := bus.HistoryQuery{Mode: bus.ReadLast}
	if _, err := b.ReadForClient(context.Background(), "chat", q); !errors.Is(err, bus.ErrReadsBusy) {
		t.Fatalf("a read with every client slot taken: %v, want %v", err, bus.ErrReadsBusy)
	}
	if r, _, err := b.ReadOnce("chat", frame.Position{}, ""); err != nil || r.Latest != frame.NoHistory {
		t.Fatalf("a fill's read with every client slot taken: %v, %v", r, err)
	}
	<-b.ClientReads
	if r, err := b.ReadForClient(context.Background(), "chat", q); err != nil || r.Latest != frame.NoHistory {
		t.Fatalf("a read with a slot free: %v, %v", r, err)
	}
}
