package redisws

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// JSON gets the same checks as the Caddyfile, at provision.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		h    Handler
		want string
	}{
		{Handler{}, "at least one channel"},
		{Handler{Subscribe: []string{"a", "b"}}, "several channels"},
		{Handler{Subscribe: []string{""}}, "empty"},
		{Handler{Subscribe: []string{"a"}, Origins: []string{"nope"}}, "not an origin"},
		{Handler{Subscribe: []string{"a"}, SendQueue: -1}, "negative"},
		{Handler{Subscribe: []string{"a"}, SendBuffer: 1}, `send_buffer: "1" is not a size between 4KiB and 1GiB`},
		{Handler{Subscribe: []string{"a"}, Redis: &RedisConfig{Password: "x"}}, "redis: needs url or addrs"},
	} {
		err := tc.h.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.h, err, tc.want)
		}
	}
	h := Handler{Subscribe: []string{"news"}, Publish: "off"}
	if err := h.Validate(); err != nil || h.publishChannel() != "" {
		t.Errorf("publish off: got %q, %v", h.publishChannel(), err)
	}
	h = Handler{Subscribe: []string{"chat"}}
	if err := h.Validate(); err != nil || h.publishChannel() != "chat" {
		t.Errorf("default publish: got %q, %v", h.publishChannel(), err)
	}
}

// The rules are Validate's alone: JSON gets the Caddyfile's answer, word for
// word, where both can say the same thing.
func TestValidateSameForJSONAndCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		caddyfile string
		json      Handler
	}{
		{"redis_ws chat {\n\tsend_buffer 1KiB\n}", Handler{Subscribe: []string{"chat"}, SendBuffer: 1024}},
		{"redis_ws chat {\n\tsend_buffer 2GiB\n}", Handler{Subscribe: []string{"chat"}, SendBuffer: 2 << 30}},
		{"redis_ws chat {\n\tmax_message_size 2GiB\n}", Handler{Subscribe: []string{"chat"}, MaxMessageSize: 2 << 30}},
		{"redis_ws chat {\n\tsend_queue 2GiB\n}", Handler{Subscribe: []string{"chat"}, SendQueue: 2 << 30}},
		{"redis_ws chat {\n\tping_interval -1s\n}", Handler{Subscribe: []string{"chat"}, PingInterval: caddy.Duration(-time.Second)}},
		{"redis_ws chat {\n\tstop_close_delay -5s\n}", Handler{Subscribe: []string{"chat"}, StopCloseDelay: caddy.Duration(-5 * time.Second)}},
		{"redis_ws chat {\n\tmax_connections -1\n}", Handler{Subscribe: []string{"chat"}, MaxConnections: -1}},
		{"redis_ws chat {\n\trate_limit -1\n}", Handler{Subscribe: []string{"chat"}, RateLimit: -1}},
		{"redis_ws chat {\n\tsubscribe_rate -1\n}", Handler{Subscribe: []string{"chat"}, SubscribeRate: -1}},
		{"redis_ws chat {\n\tsubscribe_rate 5 -1\n}", Handler{Subscribe: []string{"chat"}, SubscribeRate: 5, SubscribeRateBurst: -1}},
		{"redis_ws chat {\n\tgap_policy reload\n}", Handler{Subscribe: []string{"chat"}, GapPolicy: "reload"}},
		{"redis_ws chat {\n\thistory -5\n}", Handler{Subscribe: []string{"chat"}, History: &History{Size: -5}}},
		{"redis_ws chat {\n\thistory 10 -1s\n}", Handler{Subscribe: []string{"chat"}, History: &History{Size: 10, TTL: caddy.Duration(-time.Second)}}},
		{"redis_ws chat {\n\torigins example.com\n}", Handler{Subscribe: []string{"chat"}, Origins: []string{"example.com"}}},
		{"redis_ws {\n\tsubscribe a b\n}", Handler{Subscribe: []string{"a", "b"}}},
		{"redis_ws chat {\n\tpresence {\n\t\ttimeout 500ms\n\t}\n}", Handler{Subscribe: []string{"chat"}, Presence: &Presence{Timeout: caddy.Duration(500 * time.Millisecond)}}},
		{"redis_ws chat {\n\tpresence {\n\t\tmax_users 100001\n\t}\n}", Handler{Subscribe: []string{"chat"}, Presence: &Presence{MaxUsers: 100001}}},
		{"redis_ws chat {\n\tcompress 2GiB\n}", Handler{Subscribe: []string{"chat"}, Compress: &Compression{MinSize: 2 << 30}}},
		{"redis_ws chat {\n\tredis {\n\t\taddrs 127.0.0.1:1 127.0.0.1:2\n\t}\n}", Handler{Subscribe: []string{"chat"}, Redis: &RedisConfig{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}}}},
	} {
		_, cerr := parse(tc.caddyfile)
		jerr := tc.json.Validate()
		if cerr == nil || jerr == nil {
			t.Errorf("%q: Caddyfile error %v, JSON error %v; want both", tc.caddyfile, cerr, jerr)
			continue
		}
		if got, _, _ := strings.Cut(cerr.Error(), ", at Testfile:"); got != jerr.Error() {
			t.Errorf("Caddyfile says %q, JSON %q", got, jerr.Error())
		}
	}
}

// JSON's new_channels is a number of channels per second, or -1 for none.
func TestHistoryNewChannelsJSON(t *testing.T) {
	for n, ok := range map[int]bool{-2: false, -1: true, 0: true, 1: true, 5000: true} {
		h := Handler{Subscribe: []string{"chat"}, History: &History{Size: 10, NewChannels: n}}
		err := h.Validate()
		if (err == nil) != ok || err != nil && err.Error() != fmt.Sprintf("history: new_channels: %d is not a number of channels per minute, or -1 for no limit", n) {
			t.Errorf("new_channels %d: %v", n, err)
		}
	}
}
