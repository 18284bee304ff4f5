package redisws

import (
	"context"
	"fmt"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// goRedisLogger puts go-redis's own messages (failed dials, discarded
// connections) into Caddy's log at debug level, under the name go-redis; the
// broker's warn and info lines already say what an operator needs, once per
// outage. go-redis has one logger per process, not per client, so this
// applies to every user of go-redis v9 in the binary: another plugin's
// go-redis lines come here too, unless it sets its own logger, which then
// takes ours too. The README states this trade-off.
type goRedisLogger struct{}

func init() {
	redis.SetLogger(goRedisLogger{})
	bus.SetLogger(func() *zap.Logger { return caddy.Log().Named("http.handlers.redis_ws") })
}

func (goRedisLogger) Printf(_ context.Context, format string, v ...any) {
	if ce := caddy.Log().Named("go-redis").Check(zapcore.DebugLevel, "go-redis"); ce != nil {
		ce.Write(zap.String("message", fmt.Sprintf(format, v...)))
	}
}
