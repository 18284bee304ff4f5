package frame

import (
	_ "embed"
	"strconv"
)

// Position is a place in a channel's history: an offset of an epoch.
type Position struct {
	Epoch  string
	Offset int64
}

func (p Position) String() string { return p.Epoch + ":" + strconv.FormatInt(p.Offset, 10) }

// NoHistory is the position of a channel that has no history yet, answered
// without creating any key: epoch "0", which no epoch made by the scripts
// can be (they are the hex of Redis's TIME, 13 characters or more), and
// offset 0. Every epoch follows it from its offset 1, so a client told
// 0:0 resumes from there whatever epoch the channel gets. What this cannot
// tell: a channel that got an epoch and lost it again (Redis restarted
// without persistence) while the client was away; its next epoch then
// looks complete.
var NoHistory = Position{Epoch: "0"}
