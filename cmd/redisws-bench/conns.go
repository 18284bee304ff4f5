package main

import (
	"fmt"
	"os"
	"time"

	"github.com/gorilla/websocket"
)

// connsResult is the JSON line of a conns run. Field names are stable.
type connsResult struct {
	Mode        string   `json:"mode"`
	Time        string   `json:"time"`
	URLs        []string `json:"urls"`
	Transport   string   `json:"transport"`
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
	HoldS           float64        `json:"hold_s"`
	MessagesSeen    uint64         `json:"messages_seen"`
	LastMessageMs   int64          `json:"last_message_unix_ms"` // when the last one arrived; 0: none
	Stamped         uint64         `json:"stamped"`              // messages that carried a send time
	LatencyP50Ms    float64        `json:"latency_p50_ms"`
	LatencyP99Ms    float64        `json:"latency_p99_ms"`
	LatencyMaxMs    float64        `json:"latency_max_ms"`
	// -reconnect: connections opened again after the server ended them, by
	// the Unix second they opened in.
	Reconnects         int           `json:"reconnects"`
	ReconnectsBySecond map[int64]int `json:"reconnects_by_second,omitempty"`
	WallS              float64       `json:"wall_s"`
	Error              string        `json:"error,omitempty"`
}

func connsMode(c *config) int {
	wallStart := time.Now()
	connectBudget := c.connectBudget(c.conns)
	hardStop := connectBudget + c.hold + 40*time.Second
	defer startWatchdog(hardStop).Stop()
	res := &connsResult{
		Mode: "conns", Time: time.Now().UTC().Format(time.RFC3339), URLs: c.urls, Transport: c.transport,
		Conns: c.conns, ConnectRate: c.connectRate, Nofile: nofile(), Pids: c.pids, CloseCodes: map[string]int{},
		RSSAfterKB: -1, GoroutinesAft: -1, GoroutinesClose: -1, HoldS: c.hold.Seconds(),
	}
	if len(c.pids) == 0 {
		c.logf("no -pids: RSS is not measured")
	}
	res.RSSBeforeKB = settleRSS(c.pids, 5*time.Second)
	res.GoroutinesBef = goroutines(c.admin)

	c.logf("opening %d idle %s connections to %d node(s) at %.0f/s ...", c.conns, c.transport, len(c.urls), c.connectRate)
	t0 := time.Now()
	targets, _ := place(c, c.conns)
	var d *dialResult
	if c.transport == "ws" {
		d = dialAll(c, targets, 1024, 1024, t0.Add(connectBudget), nil)
	} else {
		d = dialAllSSE(c, targets, 1024, t0.Add(connectBudget))
	}
	res.countConnects(t0, d)

	idle := &idleReaders{codes: res.CloseCodes}
	var rc *reconnects
	if c.reconnect {
		rc = newReconnects(c, d)
	}
	for i, conn := range d.conns {
		if conn == nil {
			continue
		}
		res.Opened++
		var again func() *websocket.Conn
		if rc != nil {
			again = func() *websocket.Conn { return rc.again(i) }
		}
		idle.watchWS(conn, again)
	}
	for _, s := range d.streams {
		if s != nil {
			res.Opened++
			idle.watchStream(s)
		}
	}
	c.logf("opened %d/%d in %.2fs (handshake p50 %.1f ms, p99 %.1f ms, max %.1f ms), %d errors",
		res.Opened, c.conns, res.ConnectPhaseS, res.ConnectP50Ms, res.ConnectP99Ms, res.ConnectMaxMs, res.ConnectErrors)
	for k, v := range d.errs {
		c.logf("  connect error x%d: %s", v, k)
	}
	if c.ready != "" {
		if err := writeReady(c.ready, res.Opened); err != nil {
			c.logf("-ready: %v", err)
		}
	}

	res.RSSAfterKB = settleRSS(c.pids, 5*time.Second)
	res.GoroutinesAft = goroutines(c.admin)
	idle.mu.Lock()
	alive := res.Opened - idle.disconnects
	idle.mu.Unlock()
	if res.RSSBeforeKB > 0 && res.RSSAfterKB > 0 && alive > 0 {
		res.KBPerConn = round3(float64(res.RSSAfterKB-res.RSSBeforeKB) / float64(alive))
	}
	if res.GoroutinesBef >= 0 && res.GoroutinesAft >= 0 && alive > 0 {
		res.GoroutinesPer = round3(float64(res.GoroutinesAft-res.GoroutinesBef) / float64(alive))
	}
	if c.hold > 0 {
		c.logf("holding them idle for %s (SIGINT or SIGTERM ends it) ...", c.hold)
		holdIdle(c.hold)
	}

	idle.stopping.Store(true)
	if rc != nil {
		rc.closeAll()
		rc.mu.Lock()
		res.Reconnects, res.ReconnectsBySecond = rc.count, rc.bySecond
		rc.mu.Unlock()
	} else {
		closeAll(d.conns)
	}
	closeStreams(d.streams)
	if err := awaitReaders(&idle.wg); err != nil {
		res.Error = err.Error()
	}
	idle.mu.Lock()
	res.Disconnects = idle.disconnects
	res.Stamped = idle.latency.n
	res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyMaxMs = usToMs(idle.latency.quantile(0.5)), usToMs(idle.latency.quantile(0.99)), usToMs(idle.latency.maxUs)
	idle.mu.Unlock()
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
	res.MessagesSeen = idle.seen.Load()
	res.LastMessageMs = idle.lastAt.Load()
	res.WallS = round3(time.Since(wallStart).Seconds())
	emitJSON(res)
	if !c.jsonOnly {
		w := os.Stderr
		fmt.Fprintf(w, "\n== conns: %d idle %s connections over %d node(s) ==\n", c.conns, c.transport, len(c.urls))
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
		if res.Stamped > 0 {
			fmt.Fprintf(w, "messages    %d, %d stamped: latency p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
				res.MessagesSeen, res.Stamped, res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyMaxMs)
		}
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
