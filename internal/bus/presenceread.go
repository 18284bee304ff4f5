package bus

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

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

// PresenceCount is what a query answers for one channel.
type PresenceCount struct {
	Connections int64    `json:"connections"`
	Users       []string `json:"users"`
	UserCount   int64    `json:"user_count"` // users present, listed or not
}

// presenceQueryTimeout bounds a presence query's round trip to Redis.
const presenceQueryTimeout = 3 * time.Second

// ReadPresence reads the presence of channels, in one pipeline.
func ReadPresence(ctx context.Context, rdb redis.UniversalClient, channels []string, maxUsers int) (map[string]PresenceCount, error) {
	ctx, cancel := context.WithTimeout(ctx, presenceQueryTimeout)
	defer cancel()
	cmds := make([]*redis.Cmd, len(channels))
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, ch := range channels {
			cmds[i] = presenceReadScript.Eval(ctx, p, PresenceKeys(ch), maxUsers)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading presence: %w", err)
	}
	out := make(map[string]PresenceCount, len(channels))
	for i, ch := range channels {
		res, err := cmds[i].Slice()
		if err != nil || len(res) < 2 {
			return nil, fmt.Errorf("reading the presence of %s: %w", ch, errors.Join(err, errors.New("malformed reply")))
		}
		pc := PresenceCount{Users: make([]string, 0, len(res)-2)}
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
