package redisws

import (
	"net/http"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// admission is what a transport asks of admit: the kind of frames its
// client takes, whether its client publishes, whether its query may name
// more channels (channel=), and how it reads what the request asks of the
// history.
type admission struct {
	kind          frame.FrameKind
	publishes     bool
	queryChannels bool
	resume        func(channels []string) (*resumeRequest, error)
}

// admit runs what every transport does before it answers a request that
// subscribes: resolve its channels, read what it asks of the history, make
// its client, add the client to the hub (503 beyond max_connections), wait
// until Redis confirmed its subscriptions, and queue its opening frames and
// replay (503 when the history cannot be read now). A request whose token
// expired by then is refused (401); else its client closes when the token
// expires (ExpireAt). Every check of the request comes before hub.Add, the
// first thing that asks Redis for anything: a refused request subscribes
// nothing and reads nothing. A nil
// client means the request was refused, and the error is ServeHTTP's; else
// the caller owns the client and removes it from the hub when done.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, a admission) (*fanout.Client, error) {
	channels, publish, err := h.resolve(repl)
	if err != nil {
		return nil, refuse(w, http.StatusBadRequest, err.Error())
	}
	if !a.publishes {
		publish = ""
	}
	if a.queryChannels {
		q, err := parseQuery(r)
		if err == nil {
			channels, err = h.queryChannels(q, repl, channels)
		}
		if err != nil {
			return nil, refuseWith(w, err)
		}
	}
	exp := tokenExpiry(repl)
	if expired(exp) {
		return nil, refuseWith(w, errTokenExpired)
	}
	resume, err := a.resume(channels)
	if err != nil {
		return nil, refuse(w, http.StatusBadRequest, err.Error())
	}
	c := fanout.NewClient(channels, publish, a.kind, h.SendQueue, &h.metrics.client)
	if c.User, err = h.presenceUser(repl); err != nil {
		return nil, refuse(w, http.StatusBadRequest, err.Error())
	}
	if !h.hub.Add(c) {
		w.Header().Set("Retry-After", retryAfter)
		return nil, refuse(w, http.StatusServiceUnavailable, "too many connections; try again later")
	}
	h.broker.WaitReady(r.Context(), h.subscribedFor(c))
	if a.kind.Positioned() || resume != nil {
		if err := h.catchUp(r.Context(), c, resume); err != nil {
			h.hub.Remove(c)
			h.logger.Debug("resume refused", zap.Error(err))
			w.Header().Set("Retry-After", retryAfter)
			return nil, refuse(w, http.StatusServiceUnavailable, "the history cannot be read now; try again later")
		}
	}
	if expired(exp) { // while Redis answered
		h.hub.Remove(c)
		return nil, refuseWith(w, errTokenExpired)
	}
	c.ExpireAt(exp)
	return c, nil
}

// opened counts c's connection as open, now that its link is started (a
// WebSocket, or an event stream when stream), and gives the one end of
// every transport's connection, to call once when it is over: the client
// closed if it is not yet, out of the hub (its channels; presence leave),
// the gauges back down, and a debug line with its close code.
func (h *Handler) opened(c *fanout.Client, remote string, stream bool) (closed func()) {
	start := time.Now()
	what := "connection closed"
	h.metrics.connections.Inc()
	if stream {
		what = "event stream closed"
		h.metrics.streams.Inc()
	}
	return func() {
		c.Close(0, "")
		h.hub.Remove(c)
		if stream {
			h.metrics.streams.Dec()
		}
		h.metrics.connections.Dec()
		if ce := h.logger.Check(zapcore.DebugLevel, what); ce != nil {
			ce.Write(zap.String("remote", remote), zap.Strings("channels", c.Channels),
				zap.Duration("duration", time.Since(start)), zap.Int("close_code", c.CloseCode()))
		}
	}
}
