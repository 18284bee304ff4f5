package e2e

// The outbox against a redis-server of its own: it holds frames until the
// subscription is up, its limits, a refusal, the acknowledgements, expiry.

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/redis/go-redis/v9"
)

// startTestOutbox starts an outbox publishing to rs as user (""; default),
// stopped at cleanup. It publishes once up is called: the table's one
// connection is then up.
func startTestOutbox(t *testing.T, rs *redisServer, user string) (o *bus.Outbox, up func()) {
	t.Helper()
	o, tb, c := startOutboxOn(t, rs, user)
	return o, func() { tb.Connected(c) }
}

// startOutboxOn is startTestOutbox with the channel table it asks which
// channels this node hears, and the table's one connection, not up yet.
func startOutboxOn(t *testing.T, rs *redisServer, user string) (*bus.Outbox, *bus.ChannelTable, *bus.SubConn) {
	t.Helper()
	opts := &redis.Options{Addr: rs.Addr}
	if user != "" {
		opts.Username, opts.Password = user, "pw"
	}
	client := redis.NewClient(opts)
	ctx, cancel := context.WithCancel(context.Background())
	tb, c := testkit.SingleTable()
	var running sync.WaitGroup
	o := bus.StartOutbox(ctx, &running, client, false, tb)
	t.Cleanup(func() {
		cancel()
		running.Wait()
		_ = client.Close()
	})
	return o, tb, c
}

// subscribed returns the messages of ch, once Redis has confirmed the
// subscription.
func subscribed(t *testing.T, rdb *redis.Client, ch string) <-chan *redis.Message {
	t.Helper()
	ps := rdb.Subscribe(context.Background(), ch)
	t.Cleanup(func() { _ = ps.Close() })
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ps.Channel(redis.WithChannelSize(20000))
}

func nextPayload(t *testing.T, msgs <-chan *redis.Message) string {
	t.Helper()
	select {
	case m := <-msgs:
		return m.Payload
	case <-time.After(wait):
		t.Fatal("no message from Redis")
		return ""
	}
}

// Frames wait while the subscription is down and are published, in order,
// once it is up: a message published to Redis meanwhile comes first.
func TestOutboxHoldsUntilUp(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	msgs := subscribed(t, rdb, "chat")
	o, up := startTestOutbox(t, rs, "")
	const n = 1500 // three pipelines
	for i := range n {
		if !o.Add("chat", []byte(strconv.Itoa(i)), false, nil, nil, nil) {
			t.Fatalf("frame %d dropped", i)
		}
	}
	if err := rdb.Publish(context.Background(), "chat", "marker").Err(); err != nil {
		t.Fatal(err)
	}
	up()
	if got := nextPayload(t, msgs); got != "marker" {
		t.Fatalf("first message %q: frames published while the subscription was down", got)
	}
	for i := range n {
		if got := nextPayload(t, msgs); got != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, got)
		}
	}
}

// A full outbox makes add wait for room and then drop the frame, counted;
// room made while it waits lets the frame in.
func TestOutboxFull(t *testing.T) {
	rs := startRedis(t)
	msgs := subscribed(t, rs.Client(t), "chat")
	o, up := startTestOutbox(t, rs, "")
	drops := bus.Metrics.PublishDrops.WithLabelValues("outbox_full")
	before := testkit.CounterValue(t, drops)
	accepted := 0
	for accepted <= bus.OutboxMaxMessages+bus.PublishBatch && o.Add("chat", []byte(strconv.Itoa(accepted)), false, nil, nil, nil) {
		accepted++
	}
	if accepted < bus.OutboxMaxMessages || accepted > bus.OutboxMaxMessages+bus.PublishBatch {
		t.Fatalf("%d frames accepted; want the outbox's %d, plus the batch being sent", accepted, bus.OutboxMaxMessages)
	}
	if got := testkit.CounterValue(t, drops) - before; got != 1 {
		t.Fatalf("publish_dropped_total{reason=outbox_full} moved by %v, want 1", got)
	}
	added := make(chan bool)
	go func() { added <- o.Add("chat", []byte(strconv.Itoa(accepted)), false, nil, nil, nil) }()
	up()
	if !<-added {
		t.Fatal("a frame waiting for room was dropped although room was made")
	}
	for i := range accepted + 1 {
		if got := nextPayload(t, msgs); got != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, got)
		}
	}
}

// A publish Redis refuses (NOPERM) is dropped and counted; the frames around
// it are published.
func TestOutboxRefused(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	if err := rdb.Do(context.Background(), "ACL", "SETUSER", "limited", "on", ">pw", "resetchannels", "&ok", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	msgs := subscribed(t, rdb, "ok")
	o, up := startTestOutbox(t, rs, "limited")
	up()
	refused := bus.Metrics.PublishDrops.WithLabelValues("refused")
	before := testkit.CounterValue(t, refused)
	o.Add("ok", []byte("1"), false, nil, nil, nil)
	o.Add("forbidden", []byte("x"), false, nil, nil, nil)
	o.Add("ok", []byte("2"), false, nil, nil, nil)
	if a, b := nextPayload(t, msgs), nextPayload(t, msgs); a != "1" || b != "2" {
		t.Fatalf("got %q, %q; want 1, 2", a, b)
	}
	testkit.Eventually(t, wait, func() bool { return testkit.CounterValue(t, refused)-before == 1 },
		"publish_dropped_total{reason=refused} did not move by 1")
}

// A caller waiting for a publish is told where each frame of a recorded run
// went; one that gave up before the outbox sent its frame never sees it
// published; an Idempotency-Key records once and answers the same place.
func TestOutboxAcknowledges(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	o, up := startTestOutbox(t, rs, "")
	hist := &bus.HistoryOptions{Size: 10, Ttl: time.Hour}
	given := bus.NewPublishAck("")
	o.Add("chat", []byte("given up"), false, hist, given, nil)
	if !given.Abandon() {
		t.Fatal("an ack the outbox did not take yet cannot be abandoned")
	}
	acks := []*bus.PublishAck{bus.NewPublishAck(""), bus.NewPublishAck(""), bus.NewPublishAck("")}
	for i, a := range acks {
		o.Add("chat", []byte(strconv.Itoa(i)), false, hist, a, nil)
	}
	keyed := []*bus.PublishAck{bus.NewPublishAck("k"), bus.NewPublishAck("k")}
	for _, a := range keyed {
		o.Add("chat", []byte("keyed"), false, hist, a, nil)
	}
	live := bus.NewPublishAck("")
	o.Add("plain", []byte("live"), false, nil, live, nil)
	up() // nothing is sent before: all of it goes in one batch
	outcome := func(a *bus.PublishAck) *bus.PublishAck {
		select {
		case <-a.Done:
		case <-time.After(wait):
			t.Fatal("no outcome")
		}
		if a.Err != nil {
			t.Fatalf("outcome: %v", a.Err)
		}
		return a
	}
	epoch := outcome(acks[0]).Pos.Epoch
	for i, a := range append(acks, keyed...) {
		want := frame.Position{Epoch: epoch, Offset: int64(min(i+1, 4))}
		if got := outcome(a); got.Pos != want || got.Duplicate != (i == 4) {
			t.Fatalf("frame %d went to %v (duplicate %v), want %v (duplicate %v)", i, got.Pos, got.Duplicate, want, i == 4)
		}
	}
	if got := outcome(live); got.Pos != (frame.Position{}) {
		t.Fatalf("a live frame has a position: %v", got.Pos)
	}
	if n := rdb.XLen(context.Background(), bus.HistoryKeys("chat")[1]).Val(); n != 4 {
		t.Fatalf("the history holds %d entries, want 4: the abandoned frame and the repeated key are not recorded", n)
	}
}

// Frames older than outboxMaxAge are dropped, and counted.
func TestOutboxExpire(t *testing.T) {
	drops := bus.Metrics.PublishDrops.WithLabelValues("expired")
	before := testkit.CounterValue(t, drops)
	old := time.Now().Add(-bus.OutboxMaxAge - time.Second)
	batch := []bus.OutMsg{{Channel: "a", At: old}, {Channel: "b", At: old}, {Channel: "c", At: time.Now()}}
	if rest := bus.Expire(batch); len(rest) != 1 || rest[0].Channel != "c" {
		t.Fatalf("kept %+v, want only the fresh frame", rest)
	}
	if got := testkit.CounterValue(t, drops) - before; got != 2 {
		t.Fatalf("publish_dropped_total{reason=expired} moved by %v, want 2", got)
	}

	// A frame whose caller gave up (answered and counted by it) is not
	// counted again; one the outbox claimed tells its waiter, which must
	// never wait forever.
	before = testkit.CounterValue(t, drops)
	abandoned, claimed := bus.NewPublishAck(""), bus.NewPublishAck("")
	abandoned.Abandon()
	batch = []bus.OutMsg{{Channel: "a", At: old, Ack: abandoned}, {Channel: "b", At: old, Ack: claimed}, {Channel: "c", At: time.Now()}}
	if rest := bus.Expire(bus.Claim(batch)); len(rest) != 1 || rest[0].Channel != "c" {
		t.Fatalf("kept %+v, want only the fresh frame", rest)
	}
	if got := testkit.CounterValue(t, drops) - before; got != 1 {
		t.Fatalf("publish_dropped_total{reason=expired} moved by %v, want 1: the claimed frame alone", got)
	}
	select {
	case <-claimed.Done:
		if !errors.Is(claimed.Err, bus.ErrExpired) {
			t.Fatalf("the waiter was told %v, want errExpired", claimed.Err)
		}
	case <-time.After(wait):
		t.Fatal("the waiter of an expired frame is never told")
	}
}
