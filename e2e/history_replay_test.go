package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

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
