package e2e

// Observability: the module's logs and its Prometheus metrics.

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

// Quiet when things are fine, and never message contents, even at debug.
func TestLogs(t *testing.T) {
	rs := startRedis(t)
	n := startNode(t, "node", siteCaddyfile("\tdebug", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
	}`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
	const ours = `"logger":"http.handlers.redis_ws"`
	c := dialWS(t, n.WSURL("/ws"), nil)
	before := countLines(n.Logs(), ours)
	const secret = "s3cr3t-payload"
	for i := range 50 {
		c.SendText(t, fmt.Sprintf("%s-%d", secret, i))
	}
	c.Collect(t, 50, wait)
	c.Close()
	testkit.Eventually(t, wait, func() bool { return countLines(n.Logs(), "connection closed") == 1 }, "no debug line when the connection closed")
	if strings.Contains(n.Logs(), secret) {
		t.Fatal("message contents in the logs")
	}
	if got := countLines(n.Logs(), ours) - before; got != 1 {
		t.Fatalf("%d log lines for one connection's 50 messages; want only the one of its end", got)
	}
	for _, line := range strings.Split(n.Logs(), "\n") {
		var fields map[string]any
		if strings.Contains(line, ours) && json.Unmarshal([]byte(line), &fields) != nil {
			t.Fatalf("not a structured log line: %q", line)
		}
	}
}

// The metrics add up after traffic, and survive a reload.
func TestMetrics(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := chatNode(t, rs.Port, "")
	clients := []*wsClient{dialWS(t, n.WSURL("/ws"), nil), dialWS(t, n.WSURL("/ws"), nil), dialWS(t, n.WSURL("/ws"), nil)}
	const perClient, fromRedis = 10, 5
	for _, c := range clients {
		for i := range perClient {
			c.SendText(t, strconv.Itoa(i))
		}
	}
	for i := range fromRedis {
		publish(t, rdb, "chat", fmt.Sprintf("redis %d", i))
	}
	messages := len(clients)*perClient + fromRedis
	for _, c := range clients {
		c.Collect(t, messages, wait)
	}
	const label = `{handler="chat"}`
	want := map[string]float64{
		"caddy_redis_ws_connections" + label:               3,
		"caddy_redis_ws_frames_received_total" + label:     float64(len(clients) * perClient),
		"caddy_redis_ws_deliveries_total" + label:          float64(len(clients) * messages),
		"caddy_redis_ws_slow_clients_closed_total" + label: 0,
	}
	check := func(when string) {
		t.Helper()
		var got map[string]float64
		testkit.Eventually(t, wait, func() bool {
			got = scrapeMetrics(t, n)
			for k, v := range want {
				if got[k] != v {
					return false
				}
			}
			return got["caddy_redis_ws_fanout_latency_seconds_count"] > 0
		}, "%s: metrics %v, want %v", when, got, want)
	}
	check("after traffic")

	changedElsewhere := siteCaddyfile("", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
	respond /health 204`)
	n.Reload(t, changedElsewhere)
	check("after a reload")
	clients[0].Close()
	want["caddy_redis_ws_connections"+label] = 2
	check("after a client left")
	if strings.Contains(n.Logs(), "registering metrics") {
		t.Fatal("metrics registration failed on reload")
	}
}

// The broker's metrics add up: messages from Redis, frames published,
// channels subscribed.
func TestBrokerMetrics(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	n := startNodes(t, 1, exampleCaddyfile(t), rs)[0]
	a := dialWS(t, n.WSURL("/rooms/a"), nil)
	b := dialWS(t, n.WSURL("/rooms/b"), nil)
	for i := range 7 {
		a.SendText(t, fmt.Sprint(i))
	}
	publish(t, rdb, "room:b", "x")
	a.Collect(t, 7, wait)
	b.Collect(t, 1, wait)
	want := map[string]float64{
		"caddy_redis_ws_messages_published_total":      7,
		"caddy_redis_ws_redis_messages_received_total": 8,
		"caddy_redis_ws_channels":                      4, // chat and news (static), room:a, room:b
	}
	var got map[string]float64
	testkit.Eventually(t, wait, func() bool {
		got = scrapeMetrics(t, n)
		for k, v := range want {
			if got[k] != v {
				return false
			}
		}
		return true
	}, "metrics %v, want %v", got, want)
	a.Close()
	testkit.Eventually(t, wait, func() bool { return scrapeMetrics(t, n)["caddy_redis_ws_channels"] == 3 }, "room:a still counted")
}
