package redisws

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
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
func (h *Handler) subscribedFor(c *client) []string {
	if h.Presence == nil || c.kind != envelopeFrames {
		return c.channels
	}
	channels := slices.Clone(c.channels)
	for _, ch := range c.channels {
		channels = append(channels, presenceEvents(ch))
	}
	return channels
}

// servePresence answers a GET with Accept: application/json: who is in
// the request's channels, on every node, in one round trip to Redis.
func (h *Handler) servePresence(w http.ResponseWriter, r *http.Request) error {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	channels, _, err := h.resolve(repl)
	if err != nil {
		return refuse(w, http.StatusBadRequest, err.Error())
	}
	counts, err := readPresence(r.Context(), h.broker.client, channels, h.Presence.MaxUsers)
	if err != nil {
		h.logger.Debug("presence query failed", zap.Error(err))
		w.Header().Set("Retry-After", retryAfter)
		return refuse(w, http.StatusServiceUnavailable, "presence cannot be read now (Redis is out of reach); try again later")
	}
	body, err := json.Marshal(struct {
		Channels map[string]presenceCount `json:"channels"`
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

// The scripts that write and read a channel's presence (lua/presence_*.lua
// say how).
var (
	//go:embed lua/presence_update.lua
	presenceUpdateSource string
	//go:embed lua/presence_read.lua
	presenceReadSource   string
	presenceUpdateScript = redis.NewScript(presenceUpdateSource)
	presenceReadScript   = redis.NewScript(presenceReadSource)
)

// presenceCount is what a query answers for one channel.
type presenceCount struct {
	Connections int64    `json:"connections"`
	Users       []string `json:"users"`
	UserCount   int64    `json:"user_count"` // users present, listed or not
}

// presenceQueryTimeout bounds a presence query's round trip to Redis.
const presenceQueryTimeout = 3 * time.Second

// readPresence reads the presence of channels, in one pipeline.
func readPresence(ctx context.Context, rdb redis.UniversalClient, channels []string, maxUsers int) (map[string]presenceCount, error) {
	ctx, cancel := context.WithTimeout(ctx, presenceQueryTimeout)
	defer cancel()
	cmds := make([]*redis.Cmd, len(channels))
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, ch := range channels {
			cmds[i] = presenceReadScript.Eval(ctx, p, presenceKeys(ch), maxUsers)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading presence: %w", err)
	}
	out := make(map[string]presenceCount, len(channels))
	for i, ch := range channels {
		res, err := cmds[i].Slice()
		if err != nil || len(res) < 2 {
			return nil, fmt.Errorf("reading the presence of %s: %w", ch, errors.Join(err, errors.New("malformed reply")))
		}
		pc := presenceCount{Users: make([]string, 0, len(res)-2)}
		pc.Connections, _ = res[0].(int64)
		pc.UserCount, _ = res[1].(int64)
		for _, u := range res[2:] {
			s, _ := u.(string)
			pc.Users = append(pc.Users, s)
		}
		out[ch] = pc
	}
	return out, nil
}

// presenceEvent is a presence event as an envelope client gets it.
type presenceEvent struct {
	// "join", "leave", or "presence_reset": events may have been missed
	// (Redis was out of reach), ask again.
	Type    string `json:"type"`
	Channel string `json:"channel"`
	User    string `json:"user,omitempty"`
}

// presenceMessage is an event of channel ch that came on its events
// channel, as a message only envelope clients take (they alone are among
// the events channel's clients); nil for anything but "join <user>" or
// "leave <user>".
func presenceMessage(ch, events, payload string) *message {
	typ, user, ok := strings.Cut(payload, " ")
	if !ok || (typ != "join" && typ != "leave") || user == "" {
		return nil
	}
	metrics.presenceEvents.WithLabelValues(typ).Inc()
	return presenceFrameMessage(events, presenceEvent{Type: typ, Channel: ch, User: user})
}

// presenceFrameMessage is e as a message of the events channel whose
// envelope frame is made already.
func presenceFrameMessage(events string, e presenceEvent) *message {
	m := &message{channel: events}
	f := jsonFrame(e)
	f.msg = m
	m.frames[envelopeFrames] = f
	return m
}

// newNodeID names this process's entries in Redis.
func newNodeID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// args are the update script's arguments for u (lua/presence_update.lua).
func (u *presenceUpdate) args(node string, sharded bool) []any {
	flag := "0"
	if sharded {
		flag = "1"
	}
	args := make([]any, 0, 7+len(u.add)+len(u.remove))
	args = append(args, node, u.timeout.Milliseconds(), u.conns, u.mode, presenceEvents(u.channel), flag, strconv.Itoa(len(u.add)))
	for _, user := range u.add {
		args = append(args, user)
	}
	for _, user := range u.remove {
		args = append(args, user)
	}
	return args
}
