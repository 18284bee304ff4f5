package bus

import (
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// logger is the log of what outlives a config: the broker, its subscriber
// connections and its outbox cannot keep the logger of the config that
// created them. The adapter sets it once, before any broker starts
// (setLogger); until then nothing is logged.
var logger = zap.NewNop

// SetLogger makes f the log of the Redis side; f is called at each line, so
// that it may follow the process's default logger as configs change it.
func SetLogger(f func() *zap.Logger) { logger = f }

// WarnInterval is how often a limitedWarning may be written.
const WarnInterval = time.Minute

// The warnings about a channel, which clients name and so can multiply (or
// cause, naming ones Redis refuses): each at most once per warnInterval
// per process, whatever the number of brokers, as the log they go to is
// the process's.
var (
	warnPublishRefused      = &LimitedWarning{msg: "redis refused a publish; frames dropped"}
	warnSubscriptionRefused = &LimitedWarning{msg: "redis refused a subscription"}
	warnHistoryUnreadable   = &LimitedWarning{msg: "cannot read the history to fill a gap"}
	warnHistoryWentBack     = &LimitedWarning{msg: "history went back: the channel gets a new epoch"}
)

// LimitedWarning is a warning that is written at most once per
// warnInterval, with the number of those held back since the last one
// written. Its fields must not carry what a client chose (channel names,
// Redis's own error text, which may name them: see errorCode); detail,
// which may, goes only to the debug line written for every occurrence.
type LimitedWarning struct {
	msg string

	mu   sync.Mutex
	last time.Time // when it was last written; zero: never
	held int       // occurrences not written since then
}

func (w *LimitedWarning) log(fields []zap.Field, detail ...zap.Field) {
	if held, ok := w.Allow(time.Now()); ok {
		if held > 0 {
			fields = append(fields, zap.Int("suppressed", held))
		}
		logger().Warn(w.msg, fields...)
	}
	if ce := logger().Check(zapcore.DebugLevel, w.msg); ce != nil {
		ce.Write(append(fields, detail...)...)
	}
}

// Allow tells whether the warning may be written at now, and how many
// occurrences were held back before it.
func (w *LimitedWarning) Allow(now time.Time) (held int, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.last.IsZero() && now.Sub(w.last) < WarnInterval {
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
