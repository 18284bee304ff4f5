package redisws

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// Presence makes every connection of the route present in each of its
// channels, on every node: a GET with Accept: application/json tells who is
// there, and redis_ws.v1 clients get join and leave events.
type Presence struct {
	// Who a connection is, with placeholders, resolved when it connects;
	// a connection whose user comes out empty is anonymous: counted, not
	// listed. Default: {http.auth.user.id}.
	User string `json:"user,omitempty"`

	// How long a node's connections stay present after the node last
	// refreshed them (it does every third of this): a node that dies is
	// out of presence within it. Default: 15s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// How long a user stays present in a channel after its last connection
	// to it on a node closed; a connection of the same user within it (a
	// page reload, a reconnect to another node) makes neither a leave nor a
	// join. 0 takes it out at once. Default: 5s.
	LeaveDelay *caddy.Duration `json:"leave_delay,omitempty"`

	// Users listed per channel in an answer, the first in byte order; the
	// answer also gives how many there are. Default: 1000.
	MaxUsers int `json:"max_users,omitempty"`
}

const (
	defaultPresenceUser       = "{http.auth.user.id}"
	defaultPresenceTimeout    = 15 * time.Second
	defaultPresenceLeaveDelay = 5 * time.Second
	defaultPresenceMaxUsers   = 1000
	minPresenceTimeout        = time.Second
	maxPresenceUsers          = 100_000
	// maxUserLen is the longest user name accepted, in bytes.
	maxUserLen = 256
)

func (p *Presence) setDefaults() {
	if p.User == "" {
		p.User = defaultPresenceUser
	}
	if p.Timeout == 0 {
		p.Timeout = caddy.Duration(defaultPresenceTimeout)
	}
	if p.LeaveDelay == nil {
		d := caddy.Duration(defaultPresenceLeaveDelay)
		p.LeaveDelay = &d
	}
	if p.MaxUsers == 0 {
		p.MaxUsers = defaultPresenceMaxUsers
	}
}

// presenceUser is who a connection of the request is, for presence: ""
// when the route has none, or the user is anonymous.
func (h *Handler) presenceUser(repl *caddy.Replacer) (string, error) {
	if h.Presence == nil {
		return "", nil
	}
	if repl == nil {
		repl = caddy.NewReplacer()
	}
	user := repl.ReplaceAll(h.Presence.User, "")
	if len(user) > maxUserLen {
		return "", fmt.Errorf("presence user: the name is %d bytes long; the limit is %d", len(user), maxUserLen)
	}
	return user, nil
}

// subscribedFor are the channels a new client waits for Redis to confirm:
// its own, and for an envelope client of a route with presence their
// events channels, so that it misses no event after it is connected.
func (h *Handler) subscribedFor(c *fanout.Client) []string {
	if h.Presence == nil || c.Kind != frame.EnvelopeFrames {
		return c.Channels
	}
	channels := slices.Clone(c.Channels)
	for _, ch := range c.Channels {
		channels = append(channels, bus.PresenceEvents(ch))
	}
	return channels
}

// servePresence answers a GET with Accept: application/json: who is in
// the request's channels, on every node, in one round trip to Redis that
// only reads. The channels are those an event stream of the request would
// follow: the route's own and what its query's channel= names, under the
// same rule (queryChannels).
func (h *Handler) servePresence(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer) error {
	channels, _, err := h.resolve(repl)
	if err != nil {
		return refuse(w, http.StatusBadRequest, err.Error())
	}
	q, err := parseQuery(r)
	if err == nil {
		channels, err = h.queryChannels(q, repl, channels)
	}
	if err != nil {
		return refuseWith(w, err)
	}
	counts, err := h.broker.ReadPresence(r.Context(), channels, h.Presence.MaxUsers)
	if err != nil {
		h.logger.Debug("presence query failed", zap.Error(err))
		w.Header().Set("Retry-After", retryAfter)
		return refuse(w, http.StatusServiceUnavailable, "presence cannot be read now (Redis is out of reach); try again later")
	}
	body, err := json.Marshal(struct {
		Channels map[string]bus.PresenceCount `json:"channels"`
	}{counts})
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(append(body, '\n'))
	return err
}
