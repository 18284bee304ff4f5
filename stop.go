package redisws

// Stopping: when Caddy exits, the connections of every redis_ws route are
// closed with 1001, spread over stop_close_delay (within the http app's
// grace_period), and the exit waits for them, bounded.

import (
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/caddyserver/caddy/v2"
)

// serverShutdown runs when Caddy shuts the server down (a reload or exit).
// At exit it starts the drain of every connection of this configuration
// (Cleanup waits for it): hooks of all the handlers start together, whereas
// Caddy calls the Cleanups one after the other. Caddy also waits for every
// response to finish before it cleans up the modules, and event streams
// that stay responses (HTTP/2, HTTP/3) only finish when they are ended. On a reload Cleanup decides, as for
// WebSockets.
func (h *Handler) serverShutdown() {
	if !caddy.Exiting() {
		return
	}
	liveHandlers.Lock()
	hubs := append([]*fanout.Hub{h.hub}, liveHandlers.kept[h.configKey]...)
	hubs = append(hubs, liveHandlers.closing...)
	liveHandlers.Unlock()
	for _, hb := range hubs {
		hb.Retire(fanout.CloseGoingAway, exitReason, h.stopDrain)
	}
}

const exitReason = "server exiting"

// drain closes the connections of hubs with 1001 as Caddy exits, spread over
// the stop drain (the server's shutdown hook has usually started it), and
// returns once they are gone, or the drain and exitWait are over: whatever
// is left is closed at once, and no spread outlives the call.
func (h *Handler) drain(hubs []*fanout.Hub) {
	end := time.Now().Add(h.stopDrain)
	for _, hb := range hubs {
		hb.Retire(fanout.CloseGoingAway, exitReason, h.stopDrain)
	}
	for _, hb := range hubs {
		hb.WaitEmpty(time.Until(end))
	}
	for _, hb := range hubs {
		hb.Retire(fanout.CloseGoingAway, exitReason, 0)
		hb.Wait()
	}
	end = time.Now().Add(exitWait)
	for _, hb := range hubs {
		hb.WaitEmpty(time.Until(end))
	}
}
