package redisws

import (
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// A channel that a subscribe's own token granted lasts until that token's
// exp, unless a refresh naming the channel moves it: then the connection
// leaves the channel and gets an unsubscribed frame with the code
// token_expired, as Centrifugo does for an expired subscription token. The
// connection's one timer wakes the commands at the earliest such exp.

// grantedUntil records that ch was granted by a token that expires at exp
// (zero: never, nothing to record). cs.mu held.
func (cs *commands) grantedUntil(ch string, exp time.Time) {
	if exp.IsZero() {
		delete(cs.granted, ch)
	} else {
		cs.granted[ch] = exp
	}
	cs.wakeForGrants()
}

// ungrant forgets ch's exp: it was unsubscribed. cs.mu held.
func (cs *commands) ungrant(ch string) {
	if _, ok := cs.granted[ch]; ok {
		delete(cs.granted, ch)
		cs.wakeForGrants()
	}
}

// wakeForGrants sets the wake-up to the earliest exp. cs.mu held.
func (cs *commands) wakeForGrants() {
	var next time.Time
	for _, exp := range cs.granted {
		if next.IsZero() || exp.Before(next) {
			next = exp
		}
	}
	cs.c.WakeAt(next, cs.expireGrants)
}

// expireGrants leaves the channels whose token expired. It runs on the
// timer's goroutine, after the command in progress if one is: a channel
// unsubscribed or renewed meanwhile is no longer due.
func (cs *commands) expireGrants() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	now := time.Now()
	for ch, exp := range cs.granted {
		if now.Before(exp) {
			continue
		}
		delete(cs.granted, ch)
		if cs.h.hub.Leave(cs.c, ch) == nil {
			cs.c.Enqueue(frame.JsonFrame(protocol.Frame{Type: protocol.TypeUnsubscribed, Channel: ch,
				Code: protocol.CodeTokenExpired, Reason: "the channel's token expired; subscribe again with a fresh one"}))
		}
	}
	cs.wakeForGrants()
}
