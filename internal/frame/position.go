package frame

import "github.com/caddy-redis-ws/caddy-redis-ws/protocol"

// Position is a place in a channel's history: an offset of an epoch. It is
// the public wire type, so that the server writes positions (since=,
// subscribed frames, event ids) exactly as package protocol reads them.
type Position = protocol.Position

// NoHistory is the position of a channel that has no history yet, answered
// without creating any key: epoch "0", which no epoch made by the scripts
// can be (they are the hex of Redis's TIME, 13 characters or more), and
// offset 0. Every epoch follows it from its offset 1, so a client told
// 0:0 resumes from there whatever epoch the channel gets. What this cannot
// tell: a channel that got an epoch and lost it again (Redis restarted
// without persistence) while the client was away; its next epoch then
// looks complete.
var NoHistory = Position{Epoch: protocol.NoHistoryEpoch}
