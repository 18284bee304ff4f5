package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/gorilla/websocket"
)

// stormInFlight caps the handshakes of the reconnect storm in flight at once.
const stormInFlight = 2048

// resumeMode measures a reconnect storm with resume: -subs envelope clients
// note where they are (their subscribed frame), go away, -behind messages are
// published through one publisher (so recorded), and all clients come back
// at once with ?since=<epoch>:<offset>. It reports when every client had its
// replay, checked offset by offset, and then one live message published
// after that. -duration bounds each wait.
func resumeMode(c *config) int {
	wallStart := time.Now()
	defer startWatchdog(2*c.connectBudget(c.subs) + 4*c.duration + 30*time.Second).Stop()
	c.subprotocols = []string{protocol.Subprotocol}
	run := rand.Uint32()
	res := &resumeResult{
		Mode: "resume", Time: time.Now().UTC().Format(time.RFC3339), URLs: c.urls, Clients: c.subs,
		Behind: c.behind, SizeBytes: c.size, RunID: fmt.Sprintf("%08x", run),
		AllCaughtUpMs: -1, AllLiveMs: -1, LiveAfterSendMs: -1, ErrorCounts: map[string]int{},
	}
	fail := func(format string, a ...any) int {
		res.Error = fmt.Sprintf(format, a...)
		res.WallS = round3(time.Since(wallStart).Seconds())
		emitJSON(res)
		fmt.Fprintln(os.Stderr, "redisws-bench:", res.Error)
		return 1
	}
	targets := make([]string, c.subs)
	for i := range targets {
		targets[i] = c.urls[i%len(c.urls)]
	}

	// 1. Where is everyone: each client's subscribed frame.
	c.logf("connecting %d envelope clients to learn their position ...", c.subs)
	first := dialAll(c, targets, 4096, 1024, time.Now().Add(c.connectBudget(c.subs)), nil)
	sinces := map[string]int{}
	var at protocol.Position // where the clients are
	for _, conn := range first.conns {
		if conn == nil {
			continue
		}
		e, err := readSubscribed(conn, c.handshake)
		if err != nil {
			res.ErrorCounts["first_subscribed"]++
			continue
		}
		res.FirstConnected++
		at, _ = e.Position()
		res.Epoch, res.Since = at.Epoch, at.Offset
		sinces[at.String()]++
	}
	closeAll(first.conns)
	if res.FirstConnected == 0 {
		return fail("no client connected with a subscribed frame (%v)", first.errs)
	}
	if len(sinces) != 1 {
		return fail("clients disagree on the position: %v (is something else publishing?)", sinces)
	}

	// 2. Publish -behind messages through one envelope publisher and wait
	// until it has seen them all come back recorded.
	d := newWSDialer(c, 4096, 4096)
	ctx, cancel := context.WithTimeout(context.Background(), c.handshake)
	pub, resp, err := d.DialContext(ctx, c.urls[0], c.header())
	cancel()
	if err != nil {
		return fail("publisher: %v", err)
	}
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	defer pub.Close()
	pe, err := readSubscribed(pub, c.handshake)
	if err != nil {
		return fail("publisher: %v", err)
	}
	if pat, _ := pe.Position(); pat != at {
		return fail("publisher subscribed at %s, the clients at %s", pat, at)
	}
	want := make([]string, c.behind+1) // the last one is the live message
	for i := range want {
		want[i] = resumeData(run, i+1, c.size)
	}
	c.logf("clients at %s; publishing %d messages ...", at, c.behind)
	t0 := time.Now()
	echo := newReplayCheck(res.Epoch, res.Since, 0, want)
	echo.next = res.Since + 1 // the publisher's subscribed frame is read
	for i := 0; i < c.behind; i++ {
		_ = pub.SetWriteDeadline(time.Now().Add(c.duration))
		if err := pub.WriteMessage(websocket.TextMessage, []byte(want[i])); err != nil {
			return fail("publisher: write: %v", err)
		}
	}
	latest := res.Since + int64(c.behind)
	if err := readUntil(pub, echo, latest, time.Now().Add(c.duration)); err != nil {
		return fail("publisher: %v (echo errors %v)", err, echo.errs)
	}
	if len(echo.errs) > 0 {
		return fail("publisher's echoes: %v", echo.errs)
	}
	res.PublishS = round3(time.Since(t0).Seconds())

	// 3. The storm: every client back at once, since where it was.
	c.logf("published in %.2fs; reconnecting %d clients with since=%s ...", res.PublishS, c.subs, at)
	query := "since=" + at.String()
	clients := make([]*resumeClient, c.subs)
	for i := range clients {
		// echo.epoch: the messages', which a channel without history got
		// with the first of them.
		clients[i] = &resumeClient{url: withQuery(targets[i], query), check: newReplayCheck(echo.epoch, res.Since, latest, want)}
	}
	var caughtUp, live atomic.Int64
	var readers sync.WaitGroup
	stormEnd := time.Now().Add(c.handshake + 3*c.duration)
	sem := make(chan struct{}, stormInFlight)
	sd := newWSDialer(c, 4096, 1024)
	hdr := c.header()
	cpu0 := cpuTicks(c.pids)
	stormStart := time.Now()
	for _, rc := range clients {
		readers.Add(1)
		go func() {
			defer readers.Done()
			rc.run(sd, hdr, c.handshake, sem, stormStart, stormEnd, latest, &caughtUp, &live)
		}()
	}
	waitCount(&caughtUp, int64(c.subs), time.Now().Add(c.duration))
	if n := caughtUp.Load(); n == int64(c.subs) {
		res.AllCaughtUpMs = durMs(time.Since(stormStart))
	}
	c.logf("%d of %d clients caught up; publishing the live message ...", caughtUp.Load(), c.subs)

	// 4. One live message, after the replay.
	liveSent := time.Now()
	_ = pub.SetWriteDeadline(liveSent.Add(c.duration))
	if err := pub.WriteMessage(websocket.TextMessage, []byte(want[c.behind])); err != nil {
		res.ErrorCounts["live_publish"]++
	}
	liveNs := liveSent.Sub(stormStart).Nanoseconds()
	waitCount(&live, int64(c.subs), time.Now().Add(c.duration))
	if live.Load() == int64(c.subs) {
		res.AllLiveMs = durMs(time.Since(stormStart))
		res.LiveAfterSendMs = durMs(time.Since(liveSent))
	}
	res.StormS = round3(time.Since(stormStart).Seconds())
	for i, t := range cpuTicks(c.pids) {
		res.StormCPUS = append(res.StormCPUS, round3(float64(t-cpu0[i])/userHZ))
	}
	for _, rc := range clients {
		rc.stop()
	}
	if err := awaitReaders(&readers); err != nil {
		res.Error = err.Error()
	}

	res.tally(clients, stormStart, liveNs)
	res.WallS = round3(time.Since(wallStart).Seconds())
	emitJSON(res)
	if !c.jsonOnly {
		res.print()
	}
	if res.Error != "" || res.Errors > 0 {
		return 1
	}
	return 0
}

// withQuery adds a query to a URL that may have one.
func withQuery(u, q string) string {
	if strings.Contains(u, "?") {
		return u + "&" + q
	}
	return u + "?" + q
}

// waitCount polls until n reaches want or deadline.
func waitCount(n *atomic.Int64, want int64, deadline time.Time) {
	for n.Load() < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}
