package redisws

// The outbox without a redis-server: what a waiting caller is told when
// the broker shuts down. outbox_redis_test.go has the outbox against one.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

// A caller that waits for a frame the outbox took (as a POST does once it
// could not give up) is told the outcome when the broker shuts down while
// the outbox holds the frame for a retry: it never waits forever.
func TestOutboxShutdownTellsWaiters(t *testing.T) {
	setup, err := (&RedisConfig{URL: fmt.Sprintf("redis://127.0.0.1:%d", testkit.FreePort(t))}).resolve() // nobody listens
	if err != nil {
		t.Fatal(err)
	}
	client := setup.client()
	defer client.Close()
	tb, c := testkit.SingleTable()
	tb.Connected(c)
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	o := bus.StartOutbox(ctx, &running, client, false, tb)
	ack := bus.NewPublishAck("")
	o.Add("chat", []byte("x"), false, nil, ack, nil)
	testkit.Eventually(t, testkit.Wait, func() bool { return ack.State.Load() == bus.AckSending }, "the outbox never took the frame")
	// The attempt fails (no connection): the outbox keeps the frame and
	// waits for the subscription, which is down now.
	tb.Disconnected(c)
	testkit.Eventually(t, testkit.Wait, func() bool { return ack.State.Load() == bus.AckWaiting }, "the failed attempt did not give the frame back")
	cancel()
	select {
	case <-ack.Done:
		if ack.Err == nil {
			t.Fatal("told the frame was published; nobody listens")
		}
	case <-time.After(testkit.Wait):
		t.Fatal("the waiter is never told, after the broker shut down")
	}
	running.Wait()
}
