package main

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// connsResult is the JSON line of a conns run. Field names are stable.
type connsResult struct {
	Mode        string   `json:"mode"`
	Time        string   `json:"time"`
	URLs        []string `json:"urls"`
	Conns       int      `json:"conns"`
	ConnectRate float64  `json:"connect_rate"`
	Nofile      uint64   `json:"nofile"`
	Pids        []int    `json:"pids"`
	Opened      int      `json:"opened"`
	connectStats
	RSSBeforeKB     int64          `json:"rss_before_kb"`
	RSSAfterKB      int64          `json:"rss_after_kb"`
	KBPerConn       float64        `json:"kb_per_conn"`
	GoroutinesBef   int64          `json:"goroutines_before"`
	GoroutinesAft   int64          `json:"goroutines_after"`
	GoroutinesPer   float64        `json:"goroutines_per_conn"`
	GoroutinesClose int64          `json:"goroutines_after_close"`
	Disconnects     int            `json:"disconnects"`
	CloseCodes      map[string]int `json:"close_codes"`
	MessagesSeen    uint64         `json:"messages_seen"`
	WallS           float64        `json:"wall_s"`
	Error           string         `json:"error,omitempty"`
}

func connsMode(c *config) int {
	wallStart := time.Now()
	connectBudget := c.connectBudget(c.conns)
	hardStop := connectBudget + 40*time.Second
	defer startWatchdog(hardStop).Stop()
	res := &connsResult{
		Mode: "conns", Time: time.Now().UTC().Format(time.RFC3339), URLs: c.urls, Conns: c.conns,
		ConnectRate: c.connectRate, Nofile: nofile(), Pids: c.pids, CloseCodes: map[string]int{},
		RSSAfterKB: -1, GoroutinesAft: -1, GoroutinesClose: -1,
	}
	if len(c.pids) == 0 {
		c.logf("no -pids: RSS is not measured")
	}
	res.RSSBeforeKB = settleRSS(c.pids, 5*time.Second)
	res.GoroutinesBef = goroutines(c.admin)

	c.logf("opening %d idle connections to %d node(s) at %.0f/s ...", c.conns, len(c.urls), c.connectRate)
	t0 := time.Now()
	targets, _ := place(c, c.conns)
	d := dialAll(c, targets, 1024, 1024, t0.Add(connectBudget), nil)
	res.countConnects(t0, d)

	// One reader per connection: answers pings, notices closes, discards messages.
	var stopping atomic.Bool
	var seen atomic.Uint64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, conn := range d.conns {
		if conn == nil {
			continue
		}
		res.Opened++
		wg.Add(1)
		go func(conn *websocket.Conn) {
			defer wg.Done()
			for {
				_, _, err := conn.NextReader()
				if err != nil {
					if !stopping.Load() {
						mu.Lock()
						res.Disconnects++
						res.CloseCodes[closeKey(err)]++
						mu.Unlock()
					}
					return
				}
				seen.Add(1)
			}
		}(conn)
	}
	c.logf("opened %d/%d in %.2fs (handshake p50 %.1f ms, p99 %.1f ms, max %.1f ms), %d errors",
		res.Opened, c.conns, res.ConnectPhaseS, res.ConnectP50Ms, res.ConnectP99Ms, res.ConnectMaxMs, res.ConnectErrors)
	for k, v := range d.errs {
		c.logf("  connect error x%d: %s", v, k)
	}

	res.RSSAfterKB = settleRSS(c.pids, 5*time.Second)
	res.GoroutinesAft = goroutines(c.admin)
	mu.Lock()
	alive := res.Opened - res.Disconnects
	mu.Unlock()
	if res.RSSBeforeKB > 0 && res.RSSAfterKB > 0 && alive > 0 {
		res.KBPerConn = round3(float64(res.RSSAfterKB-res.RSSBeforeKB) / float64(alive))
	}
	if res.GoroutinesBef >= 0 && res.GoroutinesAft >= 0 && alive > 0 {
		res.GoroutinesPer = round3(float64(res.GoroutinesAft-res.GoroutinesBef) / float64(alive))
	}

	stopping.Store(true)
	closeAll(d.conns)
	if err := awaitReaders(&wg); err != nil {
		res.Error = err.Error()
	}
	if len(c.admin) > 0 {
		// give the servers a moment to notice the closes
		for i := 0; i < 20; i++ {
			time.Sleep(250 * time.Millisecond)
			res.GoroutinesClose = goroutines(c.admin)
			if res.GoroutinesClose >= 0 && res.GoroutinesClose <= res.GoroutinesBef+5 {
				break
			}
		}
	}
	res.MessagesSeen = seen.Load()
	res.WallS = round3(time.Since(wallStart).Seconds())
	emitJSON(res)
	if !c.jsonOnly {
		w := os.Stderr
		fmt.Fprintf(w, "\n== conns: %d idle connections over %d node(s) ==\n", c.conns, len(c.urls))
		fmt.Fprintf(w, "opened      %d/%d, %d errors, handshake p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
			res.Opened, c.conns, res.ConnectErrors, res.ConnectP50Ms, res.ConnectP99Ms, res.ConnectMaxMs)
		if res.RSSBeforeKB > 0 {
			fmt.Fprintf(w, "server RSS  before %d KB, after %d KB: %.1f KB per idle connection (sum over %d pid(s))\n",
				res.RSSBeforeKB, res.RSSAfterKB, res.KBPerConn, len(c.pids))
		}
		if res.GoroutinesBef >= 0 {
			fmt.Fprintf(w, "goroutines  before %d, with conns %d (%.2f per conn), after close %d\n",
				res.GoroutinesBef, res.GoroutinesAft, res.GoroutinesPer, res.GoroutinesClose)
		}
		fmt.Fprintf(w, "disconnects %d %s while idle\n", res.Disconnects, codes(res.CloseCodes))
		if res.Error != "" {
			fmt.Fprintf(w, "error       %s\n", res.Error)
		}
		fmt.Fprintf(w, "wall        %.1fs\n", res.WallS)
	}
	if res.Opened == 0 {
		return 1
	}
	return 0
}
