package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// envelopeSubprotocol is the module's JSON envelope (redis_ws.v1): a
// subscribed frame per channel, then {"channel","offset","epoch","data"}.
const envelopeSubprotocol = "redis_ws.v1"

// stormInFlight caps the handshakes of the reconnect storm in flight at once.
const stormInFlight = 2048

// noHistoryEpoch is the epoch of the position of a channel without history
// (0:0); every epoch follows it from its offset 1.
const noHistoryEpoch = "0"

// envelope is one frame an envelope client gets: a subscribed frame (Type
// "subscribed") or a message (Type empty).
type envelope struct {
	Type      string  `json:"type"`
	Channel   string  `json:"channel"`
	Offset    *int64  `json:"offset"`
	Epoch     string  `json:"epoch"`
	Recovered *bool   `json:"recovered"`
	Data      *string `json:"data"`
}

// parseEnvelope reads one frame; a subscribed frame must carry a position
// (the route has history) and a message an offset and data.
func parseEnvelope(b []byte) (envelope, error) {
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("not JSON: %w", err)
	}
	switch {
	case e.Type == "subscribed":
		if e.Offset == nil || e.Epoch == "" {
			return e, errors.New("subscribed frame without offset and epoch (is history on?)")
		}
	case e.Type != "":
		return e, fmt.Errorf("unknown frame type %q", e.Type)
	case e.Offset == nil || e.Epoch == "" || e.Data == nil:
		return e, errors.New("message without offset, epoch or data")
	}
	return e, nil
}

// replayCheck follows the frames of one resumed client: first a subscribed
// frame that says recovered, at the latest offset and in the epoch it
// resumed in, then every offset after since, exactly once and in order, each
// with the data that was published at it (want, by offset - since - 1).
// Position 0:0 is a channel without history: the first message, offset 1,
// may be of any epoch, which it is checked in from then on.
type replayCheck struct {
	epoch  string
	since  int64
	latest int64    // the subscribed frame's offset on resume: the last message published
	want   []string // data of offsets since+1, since+2, ...
	next   int64    // next offset expected; 0 until the subscribed frame
	errs   map[string]int
}

func newReplayCheck(epoch string, since, latest int64, want []string) *replayCheck {
	return &replayCheck{epoch: epoch, since: since, latest: latest, want: want, errs: map[string]int{}}
}

// add checks one frame and returns the offset it brought the client to
// (every offset up to it received), or 0 before the first message.
func (r *replayCheck) add(b []byte) int64 {
	e, err := parseEnvelope(b)
	switch {
	case err != nil:
		r.errs["malformed"]++
		return r.upTo()
	case e.Type == "subscribed":
		if r.next != 0 {
			r.errs["subscribed_twice"]++
			return r.upTo()
		}
		r.next = r.since + 1
		if e.Recovered == nil || !*e.Recovered {
			r.errs["not_recovered"]++
		}
		if e.Epoch != r.epoch {
			r.errs["subscribed_epoch"]++
		}
		if *e.Offset != r.latest {
			r.errs["subscribed_offset"]++
		}
		return r.upTo()
	case r.next == 0:
		r.errs["message_before_subscribed"]++
		r.next = r.since + 1
	}
	off := *e.Offset
	if r.epoch == noHistoryEpoch && r.next == 1 && off == 1 {
		r.epoch = e.Epoch
	}
	switch {
	case e.Epoch != r.epoch:
		r.errs["epoch"]++
		return r.upTo()
	case off < r.next:
		r.errs["duplicate_or_old"]++
		return r.upTo()
	case off > r.next:
		r.errs["gap"] += int(off - r.next)
	}
	if i := off - r.since - 1; i >= int64(len(r.want)) || *e.Data != r.want[i] {
		r.errs["wrong_data"]++
	}
	r.next = off + 1
	return r.upTo()
}

func (r *replayCheck) upTo() int64 { return max(r.next-1, 0) }

// resumeData is the data of the i-th message of a run, -size bytes when
// that is longer than its prefix.
func resumeData(run uint32, i, size int) string {
	s := fmt.Sprintf("resume %08x %06d ", run, i)
	if len(s) < size {
		s += strings.Repeat("x", size-len(s))
	}
	return s
}

// resumeResult is the JSON line of a resume run.
type resumeResult struct {
	Mode      string   `json:"mode"`
	Time      string   `json:"time"`
	URLs      []string `json:"urls"`
	Clients   int      `json:"clients"`
	Behind    int      `json:"behind"`
	SizeBytes int      `json:"size_bytes"`
	RunID     string   `json:"run_id"`

	FirstConnected int     `json:"first_connected"`
	Epoch          string  `json:"epoch"`
	Since          int64   `json:"since_offset"`
	PublishS       float64 `json:"publish_s"` // publishing the messages until the publisher saw all recorded

	connectStats                    // of the storm
	StormConnected   int            `json:"storm_connected"`
	CaughtUp         int            `json:"caught_up"`
	AllCaughtUpMs    float64        `json:"all_caught_up_ms"` // storm start → last client has every replayed message; -1: not all did
	CaughtUpP50Ms    float64        `json:"caught_up_p50_ms"`
	CaughtUpP99Ms    float64        `json:"caught_up_p99_ms"`
	ReplayP50Ms      float64        `json:"replay_p50_ms"` // a client's handshake done → it has every replayed message
	ReplayP99Ms      float64        `json:"replay_p99_ms"`
	Live             int            `json:"live"`
	AllLiveMs        float64        `json:"all_live_ms"`         // storm start → last client has the live message; -1: not all did
	LiveAfterSendMs  float64        `json:"live_after_send_ms"`  // live message sent → last client has it
	LiveLatencyP50Ms float64        `json:"live_latency_p50_ms"` // sent → received, over clients
	ReplayedFrames   uint64         `json:"replayed_frames"`     // offsets received in order, replay and live, over all clients
	Errors           int            `json:"errors"`              // sum of error_counts and clients that did not finish
	ErrorCounts      map[string]int `json:"error_counts,omitempty"`
	StormS           float64        `json:"storm_s"`     // storm start → every client live, or the waits' end
	StormCPUS        []float64      `json:"storm_cpu_s"` // CPU seconds of each -pids process over storm_s (/proc/PID/stat)
	WallS            float64        `json:"wall_s"`
	Error            string         `json:"error,omitempty"`
}

// resumeMode measures a reconnect storm with resume: -subs envelope clients
// note where they are (their subscribed frame), go away, -behind messages are
// published through one publisher (so recorded), and all clients come back
// at once with ?since=<epoch>:<offset>. It reports when every client had its
// replay, checked offset by offset, and then one live message published
// after that. -duration bounds each wait.
func resumeMode(c *config) int {
	wallStart := time.Now()
	defer startWatchdog(2*c.connectBudget(c.subs) + 4*c.duration + 30*time.Second).Stop()
	c.subprotocols = []string{envelopeSubprotocol}
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
		res.Epoch, res.Since = e.Epoch, *e.Offset
		sinces[fmt.Sprintf("%s:%d", e.Epoch, *e.Offset)]++
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
	if pe.Epoch != res.Epoch || *pe.Offset != res.Since {
		return fail("publisher subscribed at %s:%d, the clients at %s:%d", pe.Epoch, *pe.Offset, res.Epoch, res.Since)
	}
	want := make([]string, c.behind+1) // the last one is the live message
	for i := range want {
		want[i] = resumeData(run, i+1, c.size)
	}
	c.logf("clients at %s:%d; publishing %d messages ...", res.Epoch, res.Since, c.behind)
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
	c.logf("published in %.2fs; reconnecting %d clients with since=%s:%d ...", res.PublishS, c.subs, res.Epoch, res.Since)
	query := fmt.Sprintf("since=%s:%d", res.Epoch, res.Since)
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

	var dials dialResult
	dials.errs = map[string]int{}
	var ups, lives, replays []time.Duration
	for _, rc := range clients {
		if rc.dialErr != nil {
			dials.failed++
			k := rc.dialErr.Error()
			if len(k) > 120 {
				k = k[:120]
			}
			if _, ok := dials.errs[k]; ok || len(dials.errs) < maxErrKeys {
				dials.errs[k]++
			} else {
				dials.errs["other"]++
			}
			continue
		}
		res.StormConnected++
		dials.times = append(dials.times, rc.connected)
		res.ReplayedFrames += uint64(max(rc.check.upTo()-rc.check.since, 0))
		for k, v := range rc.check.errs {
			res.ErrorCounts[k] += v
		}
		if rc.caughtUp > 0 {
			ups = append(ups, rc.caughtUp)
			replays = append(replays, rc.caughtUp-rc.upAt)
		} else {
			res.ErrorCounts["not_caught_up"]++
		}
		if rc.live > 0 {
			lives = append(lives, time.Duration(rc.live.Nanoseconds()-liveNs))
		} else {
			res.ErrorCounts["no_live"]++
		}
		if rc.readErr != nil {
			res.ErrorCounts["closed_"+closeKey(rc.readErr)]++
		}
	}
	res.countConnects(stormStart, &dials)
	res.CaughtUp, res.Live = len(ups), len(lives)
	p50, p99, _ := durQuantiles(ups)
	res.CaughtUpP50Ms, res.CaughtUpP99Ms = durMs(p50), durMs(p99)
	rp50, rp99, _ := durQuantiles(replays)
	res.ReplayP50Ms, res.ReplayP99Ms = durMs(rp50), durMs(rp99)
	lp50, _, _ := durQuantiles(lives)
	res.LiveLatencyP50Ms = durMs(lp50)
	res.ErrorCounts["connect"] = dials.failed
	for k, v := range res.ErrorCounts {
		if v == 0 {
			delete(res.ErrorCounts, k)
		}
		res.Errors += v
	}
	res.WallS = round3(time.Since(wallStart).Seconds())
	emitJSON(res)
	if !c.jsonOnly {
		fmt.Fprintf(os.Stderr, "\n== resume: %d clients, %d behind, %d B ==\n"+
			"storm       %d connected (handshake p50 %.1f ms, p99 %.1f ms, max %.1f ms)\n"+
			"caught up   %d, all after %.1f ms (p50 %.1f, p99 %.1f; after the client's handshake p50 %.1f, p99 %.1f)\n"+
			"live        %d, all after %.1f ms from the storm's start, %.1f ms after its send (p50 %.1f)\n"+
			"errors      %d %s\n",
			res.Clients, res.Behind, res.SizeBytes, res.StormConnected, res.ConnectP50Ms, res.ConnectP99Ms, res.ConnectMaxMs,
			res.CaughtUp, res.AllCaughtUpMs, res.CaughtUpP50Ms, res.CaughtUpP99Ms, res.ReplayP50Ms, res.ReplayP99Ms,
			res.Live, res.AllLiveMs, res.LiveAfterSendMs, res.LiveLatencyP50Ms, res.Errors, codes(res.ErrorCounts))
	}
	if res.Error != "" || res.Errors > 0 {
		return 1
	}
	return 0
}

// resumeClient is one client of the storm.
type resumeClient struct {
	url   string
	check *replayCheck
	conn  atomic.Pointer[websocket.Conn]

	dialErr   error
	readErr   error
	connected time.Duration // handshake time
	upAt      time.Duration // storm start → handshake done
	caughtUp  time.Duration // storm start → every replayed message
	live      time.Duration // storm start → the live message
}

func (rc *resumeClient) run(d *websocket.Dialer, hdr http.Header, timeout time.Duration, sem chan struct{},
	start, end time.Time, latest int64, caughtUp, live *atomic.Int64) {
	sem <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t0 := time.Now()
	conn, resp, err := d.DialContext(ctx, rc.url, hdr)
	cancel()
	<-sem
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%v (HTTP %d)", err, resp.StatusCode)
		}
		rc.dialErr = err
		return
	}
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	rc.connected = time.Since(t0)
	rc.upAt = time.Since(start)
	rc.conn.Store(conn)
	if conn.Subprotocol() != envelopeSubprotocol {
		rc.check.errs["no_subprotocol"]++
	}
	_ = conn.SetReadDeadline(end)
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			rc.readErr = err
			return
		}
		at := time.Since(start)
		before := rc.check.upTo()
		upTo := rc.check.add(b)
		if before < latest && upTo >= latest {
			rc.caughtUp = at
			caughtUp.Add(1)
		}
		if upTo > latest {
			rc.live = at
			live.Add(1)
			return
		}
	}
}

// stop ends the client's connection (its reader then returns).
func (rc *resumeClient) stop() {
	if conn := rc.conn.Load(); conn != nil {
		closeAll([]*websocket.Conn{conn})
	}
}

// readSubscribed reads a connection's first frame, which must be a
// subscribed frame with a position.
func readSubscribed(conn *websocket.Conn, timeout time.Duration) (envelope, error) {
	if conn.Subprotocol() != envelopeSubprotocol {
		return envelope{}, fmt.Errorf("the server did not take subprotocol %s", envelopeSubprotocol)
	}
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	defer conn.SetReadDeadline(time.Time{})
	_, b, err := conn.ReadMessage()
	if err != nil {
		return envelope{}, err
	}
	e, err := parseEnvelope(b)
	if err == nil && e.Type != "subscribed" {
		err = errors.New("first frame is not a subscribed frame")
	}
	return e, err
}

// readUntil reads frames into r until it has every offset up to upTo.
func readUntil(conn *websocket.Conn, r *replayCheck, upTo int64, deadline time.Time) error {
	_ = conn.SetReadDeadline(deadline)
	defer conn.SetReadDeadline(time.Time{})
	for r.upTo() < upTo {
		_, b, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("at offset %d of %d: %w", r.upTo(), upTo, err)
		}
		r.add(b)
	}
	return nil
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
