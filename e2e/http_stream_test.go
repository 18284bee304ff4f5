package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

func TestEventStream(t *testing.T) {
	rs := startRedis(t)
	ns := httpNodes(t, 2, rs)
	first := dialSSE(t, ns[0].URL("/ws"), nil)
	testkit.Eventually(t, wait, func() bool { return first.LastID() != "" }, "no id before the first message")
	if first.LastID() != "0:0" {
		t.Fatalf("id before any message: %q, want 0:0 (no history yet)", first.LastID())
	}
	for i := 1; i <= 5; i++ {
		mustPost(t, ns[1].URL("/ws"), "m"+strconv.Itoa(i))
	}
	epoch := historyEpoch(t, rs.Client(t), "chat")
	id := func(o int) string { return epoch + ":" + strconv.Itoa(o) }
	expectEvents := func(t *testing.T, s *sseClient, from, to int) {
		t.Helper()
		for i, e := range s.Collect(t, to-from+1, wait) {
			if want := (sseEvent{"message", "m" + strconv.Itoa(from+i), id(from + i)}); e != want {
				t.Fatalf("event %d: %v, want %v", i, e, want)
			}
		}
	}
	expectEvents(t, first, 1, 5)

	t.Run("Last-Event-ID replays what came after, then live", func(t *testing.T) {
		s := dialSSE(t, ns[1].URL("/ws?rewind=50"), http.Header{"Last-Event-ID": {id(2)}})
		expectEvents(t, s, 3, 5)
		mustPost(t, ns[0].URL("/ws"), "m6")
		expectEvents(t, s, 6, 6)
		expectEvents(t, first, 6, 6)
		s.ExpectNothing(t, 200*time.Millisecond)
	})
	t.Run("since and rewind work as for WebSockets", func(t *testing.T) {
		s := dialSSE(t, ns[0].URL("/ws?since="+id(4)), nil)
		expectEvents(t, s, 5, 6)
		r := dialSSE(t, ns[0].URL("/ws?rewind=2"), nil)
		expectEvents(t, r, 5, 6)
		r.ExpectNothing(t, 200*time.Millisecond)
	})
	t.Run("an id of another epoch gets a reset, then live", func(t *testing.T) {
		s := dialSSE(t, ns[1].URL("/ws"), http.Header{"Last-Event-ID": {"gone:3"}})
		e := s.Next(t, wait)
		if e.Type != "reset" || e.ID != id(6) || e.Data != fmt.Sprintf(`{"channel":"chat","epoch":%q,"offset":6}`, epoch) {
			t.Fatalf("first event %v, want a reset at %s", e, id(6))
		}
		mustPost(t, ns[0].URL("/ws"), "m7")
		expectEvents(t, s, 7, 7)
		expectEvents(t, first, 7, 7)
	})
	t.Run("a malformed Last-Event-ID is refused", func(t *testing.T) {
		_, err := tryDialSSE(t, sseHTTP, ns[0].URL("/ws"), http.Header{"Last-Event-ID": {"no offset"}})
		var refused *sseRefused
		if !errors.As(err, &refused) || refused.Status != http.StatusBadRequest || !strings.Contains(refused.Body, "Last-Event-ID") {
			t.Fatalf("want 400 naming Last-Event-ID, got %v", err)
		}
	})
	t.Run("several channels: the id holds the position of each", func(t *testing.T) {
		s := dialSSE(t, ns[0].URL("/multi"), nil)
		testkit.Eventually(t, wait, func() bool { return strings.Count(s.LastID(), "@") == 2 }, "id %v does not name both channels", atFailure(func() any { return strconv.Quote(s.LastID()) }))
		mustPost(t, ns[1].URL("/multi"), "to a") // publishes to a
		e := s.Next(t, wait)
		ids, err := protocol.ParseEventID(e.ID)
		if err != nil || e.Data != "to a" || len(ids) != 2 || ids[0].Channel != "a" || ids[0].Offset != 1 || ids[1].Channel != "b" || ids[1].Offset != 0 {
			t.Fatalf("event %v (%v), want id a@<epoch>:1,b@<epoch>:0", e, err)
		}
		mustPost(t, ns[1].URL("/multi"), "again to a")
		resumed := dialSSE(t, ns[1].URL("/multi"), http.Header{"Last-Event-ID": {e.ID}})
		if e := resumed.Next(t, wait); e.Data != "again to a" {
			t.Fatalf("resumed stream got %v, want the second message", e)
		} else if ids, err := protocol.ParseEventID(e.ID); err != nil || ids[0].Channel != "a" || ids[0].Offset != 2 {
			t.Fatalf("resumed stream got %v (%v), want the second message of a", e, err)
		}
		resumed.ExpectNothing(t, 200*time.Millisecond)
	})
	t.Run("a stream that leaves is no longer counted", func(t *testing.T) {
		before := scrapeMetrics(t, ns[1])
		s := dialSSE(t, ns[1].URL("/plain"), nil)
		testkit.Eventually(t, wait, func() bool {
			return scrapeMetrics(t, ns[1])[`caddy_redis_ws_event_streams{handler="plain"}`] == 1
		}, "the stream is not counted")
		s.Close()
		testkit.Eventually(t, wait, func() bool {
			m := scrapeMetrics(t, ns[1])
			return m[`caddy_redis_ws_event_streams{handler="plain"}`] == 0 &&
				m[`caddy_redis_ws_connections{handler="plain"}`] == before[`caddy_redis_ws_connections{handler="plain"}`]
		}, "the closed stream is still counted")
	})
}
