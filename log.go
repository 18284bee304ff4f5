package redisws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// logger is the log of what outlives a config: the broker, its subscriber
// connections and its outbox cannot keep the logger of the config that
// created them, so they log through Caddy's default logger under the
// handler's name.
func logger() *zap.Logger { return caddy.Log().Named("http.handlers.redis_ws") }

// warnInterval is how often a limitedWarning may be written.
const warnInterval = time.Minute

// The warnings about a channel, which clients name and so can multiply (or
// cause, naming ones Redis refuses): each at most once per warnInterval
// per process, whatever the number of brokers, as the log they go to is
// the process's.
var (
	warnPublishRefused      = &limitedWarning{msg: "redis refused a publish; frames dropped"}
	warnSubscriptionRefused = &limitedWarning{msg: "redis refused a subscription"}
	warnHistoryUnreadable   = &limitedWarning{msg: "cannot read the history to fill a gap"}
	warnHistoryWentBack     = &limitedWarning{msg: "history went back: the channel gets a new epoch"}
)

// limitedWarning is a warning that is written at most once per
// warnInterval, with the number of those held back since the last one
// written. Its fields must not carry what a client chose (channel names,
// Redis's own error text, which may name them: see errorCode); detail,
// which may, goes only to the debug line written for every occurrence.
type limitedWarning struct {
	msg string

	mu   sync.Mutex
	last time.Time // when it was last written; zero: never
	held int       // occurrences not written since then
}

func (w *limitedWarning) log(fields []zap.Field, detail ...zap.Field) {
	if held, ok := w.allow(time.Now()); ok {
		if held > 0 {
			fields = append(fields, zap.Int("suppressed", held))
		}
		logger().Warn(w.msg, fields...)
	}
	if ce := logger().Check(zapcore.DebugLevel, w.msg); ce != nil {
		ce.Write(append(fields, detail...)...)
	}
}

// allow tells whether the warning may be written at now, and how many
// occurrences were held back before it.
func (w *limitedWarning) allow(now time.Time) (held int, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.last.IsZero() && now.Sub(w.last) < warnInterval {
		w.held++
		return 0, false
	}
	held = w.held
	w.last, w.held = now, 0
	return held, true
}

// errorCode is what a warning may say of err: the code of Redis's error
// reply (NOPERM), whose text can name a key or a channel (newer Redis
// versions do); the network error under it; or "unexpected" (our own
// errors name the channel).
func errorCode(err error) string {
	var reply redis.Error
	var netErr net.Error
	switch {
	case errors.As(err, &reply):
		code, _, _ := strings.Cut(reply.Error(), " ")
		return code
	case errors.As(err, &netErr):
		return netErr.Error()
	}
	return "unexpected"
}

// goRedisLogger puts go-redis's own messages (failed dials, discarded
// connections) into Caddy's log at debug level, under the name go-redis; the
// broker's warn and info lines already say what an operator needs, once per
// outage. go-redis has one logger per process, not per client, so this
// applies to every user of go-redis v9 in the binary: another plugin's
// go-redis lines come here too, unless it sets its own logger, which then
// takes ours too. The README states this trade-off.
type goRedisLogger struct{}

func init() { redis.SetLogger(goRedisLogger{}) }

func (goRedisLogger) Printf(_ context.Context, format string, v ...any) {
	if ce := caddy.Log().Named("go-redis").Check(zapcore.DebugLevel, "go-redis"); ce != nil {
		ce.Write(zap.String("message", fmt.Sprintf(format, v...)))
	}
}
