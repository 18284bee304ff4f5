package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

// ownGroup tells whether a goroutine group of a dump runs the module's code:
// the root package's or one of its internal packages'.
func ownGroup(group string) bool {
	return strings.Contains(group, "caddy-redis-ws/caddy-redis-ws.") || strings.Contains(group, "caddy-redis-ws/caddy-redis-ws/internal/")
}

// ownGoroutines counts the goroutines of a pprof dump (debug=1) that run
// this module's code. The others are Caddy's and go-redis's, which starts
// goroutines of its own for each cluster node it meets (a promoted replica).
func ownGoroutines(dump string) int {
	total := 0
	for _, group := range strings.Split(dump, "\n\n") {
		var n int
		if _, err := fmt.Sscanf(group, "%d @", &n); err == nil && ownGroup(group) {
			total += n
		}
	}
	return total
}

// flowing waits until every subscriber of room received a message that each
// sender of the room sends from now on.
func (d *failoverDrill) flowing(t *testing.T, room string, timeout time.Duration, what string) {
	t.Helper()
	d.waitBeyond(t, room, 1, timeout, what)
}

// flowingAfter waits until each sender of room sent n more messages and
// every subscriber got them.
func (d *failoverDrill) flowingAfter(t *testing.T, room string, n int, what string) {
	t.Helper()
	d.waitBeyond(t, room, n, wait, what)
}

func (d *failoverDrill) waitBeyond(t *testing.T, room string, n int, timeout time.Duration, what string) {
	t.Helper()
	marks := map[string]int64{}
	for _, s := range d.sends[room] {
		marks[s.prefix] = s.sent.Load() + int64(n)
	}
	testkit.Eventually(t, timeout, func() bool {
		for _, sub := range d.subs[room] {
			for prefix, mark := range marks {
				if sub.highest(prefix) < mark {
					return false
				}
			}
		}
		return true
	}, "%s: traffic does not flow %s", room, what)
}

// checkResumes resumes from the first and the last position a client saw
// that the new master does not hold: the history lost them, so the answer
// must be recovered:false.
func (d *failoverDrill) checkResumes(t *testing.T, room string, held heldStream, seen map[frame.Position]string) {
	t.Helper()
	var first, last frame.Position
	for p, payload := range seen {
		if held.has(p, payload) {
			continue
		}
		if first.Epoch == "" || p.Offset < first.Offset {
			first = p
		}
		if p.Offset > last.Offset {
			last = p
		}
	}
	if first.Epoch == "" {
		return // nothing was lost
	}
	url := d.nodes[0].WSURL("/rooms/" + strings.TrimPrefix(room, "room:"))
	for _, p := range []frame.Position{first, last} {
		c := dialEnvelope(t, sinceURL(url, p.Epoch, p.Offset))
		s := expectSubscribed(t, c, room)
		if s.Recovered == nil || *s.Recovered {
			t.Fatalf("since %s, a position the new master does not hold (lost to replication): %v; want recovered:false", p, s)
		}
		c.Close()
	}
}
