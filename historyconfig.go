package redisws

import (
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddyserver/caddy/v2"
	"golang.org/x/time/rate"
)

const (
	defaultHistoryTTL = 24 * time.Hour
	maxHistorySize    = 100_000
)

// History keeps the last messages of each channel in Redis, so that clients
// can resume and nodes fill their own gaps.
type History struct {
	// Messages kept per channel; required, from 1 to 100000.
	Size int `json:"size"`

	// How long a channel's messages are kept after its last message.
	// Default: 24h.
	TTL caddy.Duration `json:"ttl,omitempty"`

	// Channels that may get a history through this route, per minute and
	// node (as many at once, then one every 60s/n): a message to a channel
	// without history yet beyond it is refused (a POST with 429, a
	// WebSocket client is closed with 1013), so that clients cannot make
	// Redis keep keys without bound. -1: no limit. Default: 60.
	NewChannels int `json:"new_channels,omitempty"`
}

// defaultNewChannels is History.NewChannels when it is not set: a channel
// with one message costs Redis about 4.6 KB for the history's ttl (its
// stream's first node) and 100 bytes for 30 days (its epoch), so one a
// second for a day, on one node, is about 400 MB.
const defaultNewChannels = 60

// options applies the defaults and makes the limiter of new channels.
func (hc *History) options() *bus.HistoryOptions {
	o := &bus.HistoryOptions{Size: hc.Size, Ttl: time.Duration(hc.TTL), NewPerMinute: hc.NewChannels}
	if o.Ttl == 0 {
		o.Ttl = defaultHistoryTTL
	}
	if o.NewPerMinute == 0 {
		o.NewPerMinute = defaultNewChannels
	}
	if n := o.NewPerMinute; n > 0 {
		o.NewChannels = rate.NewLimiter(rate.Limit(float64(n)/60), n)
	}
	return o
}
