package redisws

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/chatjson"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/caddyserver/caddy/v2"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// BenchmarkChannels measures the channel bookkeeping with 10,000 channels
// subscribed on a real Redis: join-leave is a new channel's first client
// (joined, SUBSCRIBE confirmed) and its leaving; health-tick is the work of
// one tick of the subscriber's loop when nothing changed.
func BenchmarkChannels(b *testing.B) {
	br := benchBroker(b)
	h := fanout.NewHub(br.Table, func() {}, fanout.HubOptions{})
	const n = 10000
	for i := range n {
		h.SubscribeStatic(fmt.Sprintf("bench:%d", i))
	}
	deadline := time.Now().Add(time.Minute)
	for i := range n {
		for !closed(br.Table.ReadyChan(fmt.Sprintf("bench:%d", i))) {
			if time.Now().After(deadline) {
				b.Fatal("10,000 channels not subscribed within a minute")
			}
			time.Sleep(time.Millisecond)
		}
	}
	ctx := context.Background()
	b.Run("join-leave/subscribed-10000", func(b *testing.B) {
		for i := range b.N {
			ch := fmt.Sprintf("bench:extra:%d", i)
			br.Table.Join(ch, h, false)
			br.WaitReady(ctx, []string{ch})
			br.Table.Leave(ch, h)
		}
	})
	b.Run("health-tick/subscribed-10000", func(b *testing.B) {
		ps := br.Client.Subscribe(ctx)
		defer ps.Close()
		for range b.N {
			if err := br.Table.Single.Reconcile(ps); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRead measures the reader of one connection: text frames from a
// client over loopback TCP, through the corked connection and gorilla,
// read and checked by readLoop on a receive-only client (counted, not
// published); one op is one frame.
func BenchmarkRead(b *testing.B) {
	for _, size := range []int{64, 1024} {
		b.Run("payload-"+testkit.SizeName(size), func(b *testing.B) { benchRead(b, size) })
	}
}

func benchRead(b *testing.B, size int) {
	h := &Handler{MaxMessageSize: 1 << 20, PingInterval: caddy.Duration(time.Hour), metrics: benchMetrics, logger: zap.NewNop(),
		upgrader: websocket.Upgrader{ReadBufferSize: 1024, WriteBufferPool: &writeBuffers}}
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj := &hijacker{ResponseWriter: w}
		conn, err := h.upgrader.Upgrade(hj, r, nil)
		if err != nil {
			b.Error(err)
			return
		}
		c := fanout.NewClient([]string{"bench"}, "", frame.RawFrames, 1<<30, &benchMetrics.client)
		go func() {
			defer close(done)
			link := newWSLink(conn, hj.conn, &Compression{})
			h.newWSReader(c, link, h.publishFrames(c)).loop(time.Hour)
			_ = conn.Close()
		}()
	}))
	defer srv.Close()
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	const perWrite = 64
	var burst []byte
	for i := range perWrite {
		burst = append(burst, testkit.ClientFrame(true, 0, websocket.TextMessage, []byte(chatjson.Message(size, i)[:size]), true, -1)...)
	}
	read0 := testkit.CounterValue(b, benchMetrics.framesReceived)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += perWrite {
		n := min(perWrite, b.N-sent)
		if _, err := client.UnderlyingConn().Write(burst[:len(burst)/perWrite*n]); err != nil {
			b.Fatal(err)
		}
	}
	for testkit.CounterValue(b, benchMetrics.framesReceived)-read0 < float64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	_ = client.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	<-done
}

// BenchmarkClientFrames measures what the scan of the frame headers that
// clients send (clientFrames) adds to the read path: one op is one frame,
// in reads of 1 KiB as gorilla's read buffer makes them.
func BenchmarkClientFrames(b *testing.B) {
	for _, size := range []int{64, 1024} {
		b.Run("payload-"+testkit.SizeName(size), func(b *testing.B) {
			const perBurst = 64
			var burst []byte
			for range perBurst {
				burst = append(burst, testkit.ClientFrame(true, 0, websocket.TextMessage, make([]byte, size), true, -1)...)
			}
			var s clientFrames
			b.SetBytes(int64(size))
			b.ResetTimer()
			for done := 0; done < b.N; done += perBurst {
				for p := burst; len(p) > 0; p = p[min(1024, len(p)):] {
					s.follow(p[:min(1024, len(p))])
				}
			}
		})
	}
}
