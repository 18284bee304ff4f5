package e2e

import (
	"bufio"
	"context"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/redis/go-redis/v9"
)

// numsub returns how many subscribers Redis counts on ch.
func numsub(t *testing.T, rdb *redis.Client, ch string) int64 {
	t.Helper()
	counts, err := rdb.PubSubNumSub(context.Background(), ch).Result()
	if err != nil {
		t.Fatalf("PUBSUB NUMSUB %s: %v", ch, err)
	}
	return counts[ch]
}

// historyEpoch waits until channel ch has a history, its first message
// recorded, and returns its epoch.
func historyEpoch(t testing.TB, rdb *redis.Client, ch string) string {
	t.Helper()
	var epoch string
	testkit.Eventually(t, wait, func() bool {
		epoch = rdb.HGet(context.Background(), bus.HistoryKeys(ch)[0], "e").Val()
		return epoch != ""
	}, "channel %s has no history", ch)
	return epoch
}

func publish(t *testing.T, rdb *redis.Client, ch, msg string) {
	t.Helper()
	if err := rdb.Publish(context.Background(), ch, msg).Err(); err != nil {
		t.Fatalf("PUBLISH %s: %v", ch, err)
	}
}

// subscriberID waits for the one Pub/Sub connection of our module and
// returns its id.
func subscriberID(t *testing.T, rdb *redis.Client) string {
	t.Helper()
	var ids []string
	testkit.Eventually(t, wait, func() bool { ids = subscriberIDs(t, rdb); return len(ids) == 1 }, "want 1 subscriber connection, got %v", ids)
	return ids[0]
}

// subscriberIDs returns the ids of the Pub/Sub connections of our module.
func subscriberIDs(t *testing.T, rdb *redis.Client) []string {
	t.Helper()
	list, err := rdb.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, "name=caddy-redis-ws") && strings.Contains(line, "flags=P") {
			ids = append(ids, regexp.MustCompile(`\bid=(\d+)`).FindStringSubmatch(line)[1])
		}
	}
	slices.Sort(ids) // Redis rotates its client list in the background: its order means nothing
	return ids
}

// redisCLISubscribe runs `redis-cli subscribe ch` for the test's life and
// returns a function that reads the payloads of its next n messages (it
// prints each reply element on its own line).
func redisCLISubscribe(t *testing.T, port int, ch string) func(n int) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sub := exec.CommandContext(ctx, "redis-cli", "-p", strconv.Itoa(port), "subscribe", ch)
	stdout, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = sub.Wait() })
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return func(n int) []string {
		t.Helper()
		var got []string
		timeout := time.After(wait)
		for len(got) < n {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("redis-cli subscribe ended; got %q", got)
				}
				if l == "message" {
					<-lines // channel
					got = append(got, <-lines)
				}
			case <-timeout:
				t.Fatalf("redis-cli subscribe got %q of %d messages", got, n)
			}
		}
		return got
	}
}
