package bus

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"
)

// presenceUpdate is one script call: a channel's changes since the last.
type presenceUpdate struct {
	channel     string
	mode        string // "update", "full" or "gone"
	changes     uint64 // the channel's changes it carries
	conns       int
	add, remove []string
	timeout     time.Duration
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
	args = append(args, node, u.timeout.Milliseconds(), u.conns, u.mode, PresenceEvents(u.channel), flag, strconv.Itoa(len(u.add)))
	for _, user := range u.add {
		args = append(args, user)
	}
	for _, user := range u.remove {
		args = append(args, user)
	}
	return args
}
