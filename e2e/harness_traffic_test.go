package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

// Traffic during a failover: every client sends a numbered message at a
// steady pace, and the log of each client says when each one arrived, so a
// test can wait until traffic flows again and measure the longest gap.

// timedLog records when each message reaches a client.
type timedLog struct {
	mu   sync.Mutex
	at   []time.Time
	data []string
}

// record pops c's messages into l until stop is closed.
func (l *timedLog) record(c *wsClient, stop <-chan struct{}, done *sync.WaitGroup) {
	defer done.Done()
	for {
		select {
		case <-stop:
			return
		default:
		}
		m, r := c.pop(time.Now().Add(50 * time.Millisecond))
		if r == popClosed {
			return
		}
		if r == popMessage {
			l.mu.Lock()
			l.at = append(l.at, time.Now())
			l.data = append(l.data, string(m.Data))
			l.mu.Unlock()
		}
	}
}

// reached reports whether a message "<sender>:<n>" with n >= seq arrived.
func (l *timedLog) reached(sender, seq int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range l.data {
		var s, n int
		if _, err := fmt.Sscanf(d, "%d:%d", &s, &n); err == nil && s == sender && n >= seq {
			return true
		}
	}
	return false
}

// gap is the longest time between two deliveries after from.
func (l *timedLog) gap(from time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var longest time.Duration
	prev := from
	for _, at := range l.at {
		if at.Before(from) {
			continue
		}
		longest = max(longest, at.Sub(prev))
		prev = at
	}
	return longest
}

// traffic sends "<sender>:<seq>" from every client every 50ms until stopped,
// and records what each client receives.
type traffic struct {
	logs    []*timedLog
	seq     sync.Map // sender → last seq sent (int)
	stop    chan struct{}
	senders sync.WaitGroup
	readers sync.WaitGroup
}

func startTraffic(clients []*wsClient) *traffic {
	tr := &traffic{stop: make(chan struct{})}
	for i, c := range clients {
		l := new(timedLog)
		tr.logs = append(tr.logs, l)
		tr.readers.Add(1)
		go l.record(c, tr.stop, &tr.readers)
		tr.senders.Add(1)
		go func() {
			defer tr.senders.Done()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for seq := 0; ; seq++ {
				select {
				case <-tr.stop:
					return
				case <-tick.C:
				}
				if c.TrySend(1, []byte(fmt.Sprintf("%d:%d", i, seq))) != nil {
					return
				}
				tr.seq.Store(i, seq)
			}
		}()
	}
	return tr
}

// flowing waits until every client received a message sent now or later by
// every sender.
func (tr *traffic) flowing(t *testing.T, timeout time.Duration, what string) {
	t.Helper()
	marks := map[int]int{}
	for i := range tr.logs {
		v, _ := tr.seq.Load(i)
		s, _ := v.(int)
		marks[i] = s + 1
	}
	testkit.Eventually(t, timeout, func() bool {
		for _, l := range tr.logs {
			for sender, seq := range marks {
				if !l.reached(sender, seq) {
					return false
				}
			}
		}
		return true
	}, "traffic does not flow %s", what)
}

func (tr *traffic) halt() {
	close(tr.stop)
	tr.senders.Wait()
	tr.readers.Wait()
}
