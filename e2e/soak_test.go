package e2e

// The soak and the drills: many connections under steady traffic, many
// reloads in a row, a storm of slow clients. The soak and the reload drill
// run short by default; envInt and envDuration read the settings of their
// long versions.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/gorilla/websocket"
)

// heapAfterGC returns the node's live heap in bytes, after a collection.
func heapAfterGC(t *testing.T, n *caddyNode) uint64 {
	t.Helper()
	httpGet(t, "http://"+n.adminAddr()+"/debug/pprof/heap?gc=1") // runs a GC
	_, body := httpGet(t, "http://"+n.adminAddr()+"/debug/vars")
	var vars struct{ Memstats struct{ HeapAlloc uint64 } }
	if err := json.Unmarshal([]byte(body), &vars); err != nil {
		t.Fatalf("/debug/vars: %v", err)
	}
	return vars.Memstats.HeapAlloc
}

// Many connections with steady traffic: nothing is lost, and once the
// clients leave the node's goroutines go back to where they were and its
// heap does not grow from one round of clients to the next. A first, short
// round pays what the Go runtime keeps for good once it has run that many
// goroutines (their g structures, grown maps, pools); the second round, as
// long as asked, must then leave the heap where the first left it.
func TestSoak(t *testing.T) {
	conns := envInt(t, "REDISWS_SOAK_CONNS", 1000)
	duration := envDuration(t, "REDISWS_SOAK_DURATION", 5*time.Second)
	testkit.RaiseOpenFiles(t)
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := startNodes(t, 1, exampleCaddyfile(t), rs)[0]
	baseGoroutines, baseHeap := n.BaseGoroutines(t), heapAfterGC(t, n)

	round := func(duration time.Duration) (connectedHeap uint64, sent int) {
		clients := make([]*counter, 0, conns)
		defer func() {
			for _, c := range clients {
				_ = c.conn.Close()
				<-c.done
			}
		}()
		pace := time.NewTicker(time.Millisecond) // at most 1,000 connections a second
		for range conns {
			<-pace.C
			c, err := dialCounter(n.WSURL("/ws"))
			if err != nil {
				t.Fatalf("connection %d: %v", len(clients), err)
			}
			clients = append(clients, c)
		}
		pace.Stop()
		connectedHeap = heapAfterGC(t, n)

		// Steady traffic: 40 messages a second from Redis and 10 from clients.
		tick := time.NewTicker(20 * time.Millisecond)
		for end := time.Now().Add(duration); time.Now().Before(end); sent++ {
			<-tick.C
			if sent%5 == 0 {
				if err := clients[sent%len(clients)].conn.WriteMessage(websocket.TextMessage, []byte(strconv.Itoa(sent))); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := rdb.Publish(context.Background(), "chat", strconv.Itoa(sent)).Err(); err != nil {
				t.Fatal(err)
			}
		}
		tick.Stop()
		testkit.Eventually(t, wait, func() bool {
			for _, c := range clients {
				if c.got.Load() != int64(sent) {
					return false
				}
			}
			return true
		}, "not every client got all %d messages", sent)
		return connectedHeap, sent
	}

	round(time.Second)
	n.GoroutinesBackTo(t, baseGoroutines)
	firstHeap := heapAfterGC(t, n)
	connectedHeap, sent := round(duration)
	n.GoroutinesBackTo(t, baseGoroutines)
	var afterHeap uint64
	testkit.Eventually(t, wait, func() bool { afterHeap = heapAfterGC(t, n); return afterHeap <= firstHeap+firstHeap/10 }, "heap grew from one round to the next")
	t.Logf("%d connections, %d messages each over %s: goroutines back to %d; live heap %.1f MiB at start, %.1f after a first round, %.1f with the clients (%.1f KiB per connection), %.1f after the second round",
		conns, sent, duration, n.Goroutines(t), mib(baseHeap), mib(firstHeap), mib(connectedHeap),
		(float64(connectedHeap)-float64(firstHeap))/1024/float64(conns), mib(afterHeap))
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// Many reloads in a row under traffic: connected clients lose nothing, the
// subscriber stays, nothing leaks.
func TestReloadDrill(t *testing.T) {
	reloads := envInt(t, "REDISWS_DRILL_RELOADS", 10)
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := startNodes(t, 1, exampleCaddyfile(t), rs)[0]
	id := subscriberID(t, rdb)
	base := n.BaseGoroutines(t)
	clients := []*wsClient{dialWS(t, n.WSURL("/ws"), nil), dialWS(t, n.WSURL("/ws"), nil)}

	var wg sync.WaitGroup
	stop := make(chan struct{})
	var published atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond): // pacing the publisher
			}
			if rdb.Publish(context.Background(), "chat", strconv.Itoa(i)).Err() == nil {
				published.Add(1)
			}
		}
	}()
	for i := range reloads { // each reload changes another route only
		n.Reload(t, withExtraRoute(t, fmt.Sprintf("/reload-%d", i)))
	}
	close(stop)
	wg.Wait()
	total := int(published.Load())
	for _, c := range clients {
		for i, m := range c.Collect(t, total, wait) {
			if string(m.Data) != strconv.Itoa(i) {
				t.Fatalf("message %d is %v", i, m)
			}
		}
	}
	if after := subscriberID(t, rdb); after != id {
		t.Fatalf("subscriber changed: %s → %s", id, after)
	}
	for _, c := range clients {
		c.Close()
	}
	n.GoroutinesBackTo(t, base)
	t.Logf("%d reloads, %d messages delivered to each client in order", reloads, total)
}

// A slow-client storm: a tenth of the clients stop reading. They are closed;
// every other client still gets every message, in order.
func TestSlowClientStorm(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := chatNode(t, rs.Port, "send_queue 256KiB")
	const total, slowCount, count, size = 200, 20, 300, 16 << 10
	var fast []*counter
	var slow []*websocket.Conn
	defer func() {
		for _, c := range fast {
			_ = c.conn.Close()
			<-c.done
		}
		for _, c := range slow {
			_ = c.Close()
		}
	}()
	for i := range total {
		if i%(total/slowCount) == 0 {
			conn, _, err := wsDialer.Dial(n.WSURL("/ws"), nil) // never read
			if err != nil {
				t.Fatal(err)
			}
			slow = append(slow, conn)
			continue
		}
		c, err := dialCounter(n.WSURL("/ws"))
		if err != nil {
			t.Fatal(err)
		}
		fast = append(fast, c)
	}
	payload := strings.Repeat("x", size)
	for i := range count {
		publish(t, rdb, "chat", fmt.Sprintf("%06d %s", i, payload))
		// Pace on the fast clients, as a real stream would be paced, so only
		// the clients that do not read at all fall behind: 8 messages of
		// 16 KiB stay well within the 256 KiB queue.
		testkit.Eventually(t, wait, func() bool {
			for _, c := range fast {
				if c.got.Load() < int64(i-8) {
					return false
				}
			}
			return true
		}, "fast clients stalled at message %d", i)
	}
	testkit.Eventually(t, wait, func() bool {
		for _, c := range fast {
			if c.got.Load() != count {
				return false
			}
		}
		return true
	}, "a fast client missed messages")
	for _, c := range fast {
		if last, _ := c.last.Load().(string); !strings.HasPrefix(last, fmt.Sprintf("%06d ", count-1)) {
			t.Fatalf("a fast client's last message is %.10q", last)
		}
	}
	closed := 0
	for _, conn := range slow {
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				// Closed with 1008, or cut when it could not take even the
				// close frame within a second (the README says both).
				cut := errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)
				if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) && !websocket.IsUnexpectedCloseError(err) && !cut {
					t.Fatalf("slow client: %v, want its connection closed", err)
				}
				closed++
				break
			}
		}
	}
	if closed != slowCount {
		t.Fatalf("%d of %d slow clients closed", closed, slowCount)
	}
	if got := scrapeMetrics(t, n)[`caddy_redis_ws_slow_clients_closed_total{handler="chat"}`]; got != slowCount {
		t.Fatalf("slow_clients_closed_total = %v, want %d", got, slowCount)
	}
}
