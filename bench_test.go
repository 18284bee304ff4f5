package redisws

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/chatjson"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
)

var benchMetrics = newHandlerMetrics([]string{"bench"})

// benchBroker is a broker on a redis-server of its own.
func benchBroker(b *testing.B) *bus.Broker {
	setup, err := (&RedisConfig{URL: "redis://" + testkit.Redis(b)}).resolve()
	if err != nil {
		b.Fatal(err)
	}
	br := bus.NewBroker(bus.BrokerOptions{Client: setup.client(), Sharded: setup.sharded, Name: setup.describe()})
	b.Cleanup(func() { _ = br.Close() })
	return br
}

// BenchmarkFanOut measures dispatch → hub → writers → sockets over loopback
// TCP, with real WebSocket clients that read everything: one op is one
// Redis message delivered to every client. Both ends live in this process,
// so 5,000 clients hold 10,000 sockets (the hard limit here is 20,000), and
// the clients' reading shares the CPU; allocations include the clients'.
func BenchmarkFanOut(b *testing.B) {
	testkit.RaiseOpenFiles(b)
	for _, n := range []int{1000, 5000} {
		for _, size := range []int{64, 1024} {
			b.Run(fmt.Sprintf("clients-%d/payload-%s", n, testkit.SizeName(size)), func(b *testing.B) {
				benchFanOut(b, n, strings.Repeat("x", size), false)
			})
		}
	}
}

// BenchmarkFanOutCompressed is BenchmarkFanOut with 1 KiB JSON chat
// messages to clients that agreed to permessage-deflate: a message is
// compressed once, whatever the number of clients (compressions/msg), and
// each client gets the compressed frame. deflate=off is the same clients
// and messages without compression.
func BenchmarkFanOutCompressed(b *testing.B) {
	testkit.RaiseOpenFiles(b)
	payload := chatjson.Message(1024, 0)
	for _, n := range []int{1, 10, 100, 1000} {
		for _, deflate := range []bool{true, false} {
			b.Run(fmt.Sprintf("clients-%d/deflate-%s", n, map[bool]string{true: "on", false: "off"}[deflate]), func(b *testing.B) {
				benchFanOut(b, n, payload, deflate)
			})
		}
	}
}

func benchFanOut(b *testing.B, n int, payload string, deflate bool) {
	br := benchBroker(b)
	hb := fanout.NewHub(br.Table, func() {}, fanout.HubOptions{})
	h := &Handler{upgrader: websocket.Upgrader{WriteBufferPool: &writeBuffers, ReadBufferSize: 1024, EnableCompression: deflate}}
	var serving sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := fanout.NewClient([]string{"bench"}, "", frame.RawFrames, 1<<30, &benchMetrics.client)
		hj := &hijacker{ResponseWriter: w}
		conn, err := h.upgrader.Upgrade(hj, r, nil)
		if err != nil {
			return
		}
		if deflate != hj.conn.deflate {
			b.Errorf("compression agreed: %v, want %v", hj.conn.deflate, deflate)
		}
		hb.Add(c)
		c.Start(newWSLink(conn, hj.conn, &Compression{MinSize: defaultCompressMinSize}), time.Hour)
		serving.Add(1)
		go func() {
			defer serving.Done()
			for {
				if _, _, err := conn.ReadMessage(); err != nil {
					break
				}
			}
			c.Close(0, "")
			hb.Remove(c)
		}()
	}))
	defer srv.Close()

	var received atomic.Int64
	var readers sync.WaitGroup
	conns := make([]*websocket.Conn, n)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	dialer := &websocket.Dialer{EnableCompression: deflate}
	for i := range conns {
		conn, _, err := dialer.Dial(url, nil)
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		conns[i] = conn
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				if _, _, err := conn.NextReader(); err != nil {
					return
				}
				received.Add(1)
			}
		}()
	}
	for registered := 0; registered < n; {
		time.Sleep(time.Millisecond) // the last upgrades are still being registered
		registered = hb.Len()
	}

	msg := &redis.Message{Channel: "bench", Payload: payload}
	b.SetBytes(int64(len(payload)) * int64(n))
	compressed := testkit.CounterValue(b, frame.CompressedMessages)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		br.Dispatch(msg)
	}
	want := int64(b.N) * int64(n)
	deadline := time.Now().Add(time.Minute)
	for received.Load() < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	if got := received.Load(); got < want {
		b.Fatalf("received %d of %d deliveries", got, want)
	}
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "deliveries/s")
	if deflate {
		b.ReportMetric((testkit.CounterValue(b, frame.CompressedMessages)-compressed)/float64(b.N), "compressions/msg")
	}
	for _, c := range conns {
		_ = c.Close()
	}
	readers.Wait()
	serving.Wait()
}

// BenchmarkPublish measures the publish path: client frames through the
// outbox's pipelined PUBLISHes into a real Redis, until a subscriber has
// seen them all.
func BenchmarkPublish(b *testing.B) {
	addr := testkit.Redis(b)
	b.Run("live", func(b *testing.B) { benchPublish(b, addr, nil) })
	b.Run("recorded", func(b *testing.B) { benchPublish(b, addr, (&History{Size: 1000}).options()) })
}

// benchPublish publishes b.N frames through an outbox to the redis-server
// at addr, recorded with hist, and waits until a subscriber has them all.
func benchPublish(b *testing.B, addr string, hist *bus.HistoryOptions) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ps := rdb.Subscribe(context.Background(), "bench")
	defer ps.Close()
	if _, err := ps.Receive(context.Background()); err != nil {
		b.Fatal(err)
	}
	var seen atomic.Int64
	go func() {
		for range ps.Channel(redis.WithChannelSize(100000)) {
			seen.Add(1)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	tb, c := testkit.SingleTable()
	tb.Connected(c)
	var running sync.WaitGroup
	o := bus.StartOutbox(ctx, &running, redis.NewClient(&redis.Options{Addr: addr}), false, tb)
	defer func() { cancel(); running.Wait() }()

	payload := make([]byte, 64)
	b.SetBytes(64)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for !o.Add("bench", payload, false, hist, nil, nil) { // outbox full: let it drain
			time.Sleep(100 * time.Microsecond)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for seen.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	if got := seen.Load(); got < int64(b.N) {
		b.Fatalf("redis delivered %d of %d published frames", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
