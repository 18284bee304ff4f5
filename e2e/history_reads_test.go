package e2e

// Reading the history: requests that only read (upgrades, event streams,
// presence queries) and refused ones write nothing to Redis and refused
// ones ask it nothing; 0:0, the position of a channel without history; a
// replay holds at most send_queue; a since that cannot be served answers
// without reading entries; offsets up to the int64 maximum; the node's
// fills from a channel without history, in pages; the read slots.

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
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
