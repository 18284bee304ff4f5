package main

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Times in payloads are unix nanoseconds derived from the monotonic clock
// (base + elapsed), so wall-clock steps during a run do not skew latency.
var (
	clockBase     = time.Now()
	clockBaseUnix = clockBase.UnixNano()
)

func nowNs() int64 { return clockBaseUnix + int64(time.Since(clockBase)) }

type subscriber struct {
	conn   *websocket.Conn
	room   int
	h      hist
	tracks []seqTrack // by sender id

	received atomic.Uint64 // unique, valid deliveries
	lastNs   atomic.Int64  // time of the last valid delivery
	dead     atomic.Bool   // ended before the run stopped it

	dups      uint64
	reordered uint64
	foreign   uint64 // of another run, or an unknown sender
	crossRoom uint64 // of this run, from another room's publisher
	malformed uint64
	endErr    error
}

type publisher struct {
	id   int // sender id in the payloads
	room int
	conn *websocket.Conn

	sent     uint64
	errs     uint64
	firstNs  int64
	lastNs   int64
	quota    uint64
	received atomic.Uint64 // frames the publisher got back (not deliveries)
	dead     atomic.Bool
	endErr   error
	sendErr  error
}

// fanoutResult is the JSON line of a fanout run. Field names are stable.
type fanoutResult struct {
	Mode        string   `json:"mode"`
	Label       string   `json:"label,omitempty"`
	Time        string   `json:"time"`
	URLs        []string `json:"urls"`
	Subs        int      `json:"subs"`
	Pubs        int      `json:"pubs"`
	Rooms       int      `json:"rooms"`
	Slow        int      `json:"slow"`
	RateAsked   float64  `json:"rate_asked"`
	DurationS   float64  `json:"duration_s"`
	SizeBytes   int      `json:"size_bytes"`
	DrainMaxS   float64  `json:"drain_max_s"`
	ConnectRate float64  `json:"connect_rate"`
	Nofile      uint64   `json:"nofile"`
	RunID       string   `json:"run_id"`

	SubsConnected   int            `json:"subs_connected"`
	PubsConnected   int            `json:"pubs_connected"`
	ConnectErrors   int            `json:"connect_errors"`
	ConnectErrorMsg map[string]int `json:"connect_error_samples,omitempty"`
	ConnectP50Ms    float64        `json:"connect_p50_ms"`
	ConnectP99Ms    float64        `json:"connect_p99_ms"`
	ConnectMaxMs    float64        `json:"connect_max_ms"`
	ConnectPhaseS   float64        `json:"connect_phase_s"`

	Sent        uint64  `json:"sent"`
	SendWindowS float64 `json:"send_window_s"`
	SentPerS    float64 `json:"sent_per_s"`
	SendErrors  uint64  `json:"send_errors"`
	SendError   string  `json:"send_error_sample,omitempty"`

	Expected          uint64  `json:"expected_deliveries"`
	Received          uint64  `json:"received_deliveries"`
	Loss              int64   `json:"loss"`
	LossPct           float64 `json:"loss_pct"`
	Duplicates        uint64  `json:"duplicates"`
	Reordered         uint64  `json:"reordered"`
	Foreign           uint64  `json:"foreign"`
	CrossRoom         uint64  `json:"cross_room"`
	Malformed         uint64  `json:"malformed"`
	DeliveriesPerS    float64 `json:"deliveries_per_s"`
	DeliveriesWindowS float64 `json:"deliveries_window_s"`
	DrainUsedS        float64 `json:"drain_used_s"`
	Complete          bool    `json:"complete"`
	PubReceived       uint64  `json:"pub_received"`

	LatencyP50Ms  float64 `json:"latency_p50_ms"`
	LatencyP90Ms  float64 `json:"latency_p90_ms"`
	LatencyP99Ms  float64 `json:"latency_p99_ms"`
	LatencyMaxMs  float64 `json:"latency_max_ms"`
	LatencyMeanMs float64 `json:"latency_mean_ms"`

	RoomSubsMin   int        `json:"room_subs_min"`
	RoomSubsMax   int        `json:"room_subs_max"`
	RoomsWithLoss int        `json:"rooms_with_loss"`
	RoomStats     []roomStat `json:"room_stats,omitempty"`

	SlowConnected  int            `json:"slow_connected"`
	SlowClosed     int            `json:"slow_closed"`
	SlowOpen       int            `json:"slow_open"`
	SlowEnds       map[string]int `json:"slow_ends,omitempty"`
	SlowFramesRead uint64         `json:"slow_frames_read"`
	SlowCheckS     float64        `json:"slow_check_s"`

	SubDisconnects int            `json:"sub_disconnects"`
	SubCloseCodes  map[string]int `json:"sub_close_codes"`
	PubDisconnects int            `json:"pub_disconnects"`
	PubCloseCodes  map[string]int `json:"pub_close_codes"`
	RSSBeforeKB    int64          `json:"rss_before_kb"`
	RSSAfterKB     int64          `json:"rss_after_kb"`
	WallS          float64        `json:"wall_s"`
	Error          string         `json:"error,omitempty"`
}

func fanoutMode(c *config) int {
	wallStart := time.Now()
	total := c.subs + c.slow + c.pubs
	connectBudget := time.Duration(float64(total)/c.connectRate*float64(time.Second)) + c.handshake + 10*time.Second
	hardStop := connectBudget + c.settle + c.duration + c.drain + 20*time.Second
	if c.slow > 0 {
		hardStop += slowCheckMax + slowQuiet + 5*time.Second
	}
	watchdog := time.AfterFunc(hardStop, func() {
		fmt.Fprintf(os.Stderr, "redisws-bench: watchdog: run exceeded %v, exiting\n", hardStop)
		os.Exit(3)
	})
	defer watchdog.Stop()

	run := rand.Uint32()
	res := &fanoutResult{
		Mode: "fanout", Label: c.label, Time: time.Now().UTC().Format(time.RFC3339), URLs: c.urls,
		Subs: c.subs, Pubs: c.pubs, Rooms: c.rooms, Slow: c.slow, RateAsked: c.rate, DurationS: c.duration.Seconds(),
		SizeBytes: c.size, DrainMaxS: c.drain.Seconds(), ConnectRate: c.connectRate,
		Nofile: nofile(), RunID: fmt.Sprintf("%08x", run),
		SubCloseCodes: map[string]int{}, PubCloseCodes: map[string]int{},
		RSSBeforeKB: sumRSSKB(c.pids), RSSAfterKB: -1,
	}
	logf := func(format string, a ...any) {
		if !c.jsonOnly {
			fmt.Fprintf(os.Stderr, format+"\n", a...)
		}
	}

	// Connect: subscribers first, then the slow ones, then publishers, each
	// spread over rooms and URLs by place.
	logf("connecting %d subscribers (+%d slow) and %d publishers to %d node(s), %d room(s) (0: one channel), at %.0f/s ...",
		c.subs, c.slow, c.pubs, len(c.urls), c.rooms, c.connectRate)
	connStart := time.Now()
	deadline := connStart.Add(connectBudget)
	subTargets, subRooms := place(c, c.subs)
	slowTargets, _ := place(c, c.slow)
	pubTargets, pubRooms := place(c, c.pubs)
	sd := dialAll(c, subTargets, 4096, 1024, deadline)
	slowd := dialAll(c, slowTargets, 1024, 1024, deadline)
	pd := dialAll(c, pubTargets, 4096, 4096, deadline)
	res.ConnectPhaseS = round3(time.Since(connStart).Seconds())
	res.ConnectErrors = sd.failed + slowd.failed + pd.failed
	res.ConnectErrorMsg = map[string]int{}
	for _, d := range []*dialResult{sd, slowd, pd} {
		for k, v := range d.errs {
			res.ConnectErrorMsg[k] += v
		}
	}
	if len(res.ConnectErrorMsg) == 0 {
		res.ConnectErrorMsg = nil
	}
	p50, p99, pmax := durQuantiles(append(append(sd.times, slowd.times...), pd.times...))
	res.ConnectP50Ms, res.ConnectP99Ms, res.ConnectMaxMs = durMs(p50), durMs(p99), durMs(pmax)

	var stopping atomic.Bool
	var readers sync.WaitGroup
	var pubs []*publisher
	var pubRoom []int // room of each sender id
	for i, conn := range pd.conns {
		if conn == nil {
			continue
		}
		pubs = append(pubs, &publisher{id: len(pubs), room: pubRooms[i], conn: conn})
		pubRoom = append(pubRoom, pubRooms[i])
	}
	var subs []*subscriber
	for i, conn := range sd.conns {
		if conn == nil {
			continue
		}
		subs = append(subs, &subscriber{conn: conn, room: subRooms[i], tracks: make([]seqTrack, len(pubs))})
	}
	for _, conn := range slowd.conns {
		if conn != nil {
			res.SlowConnected++
		}
	}
	res.SubsConnected, res.PubsConnected = len(subs), len(pubs)
	logf("connected %d/%d subscribers, %d/%d slow, %d/%d publishers in %.2fs (handshake p50 %.1f ms, p99 %.1f ms, max %.1f ms), %d errors",
		len(subs), c.subs, res.SlowConnected, c.slow, len(pubs), c.pubs, res.ConnectPhaseS, res.ConnectP50Ms, res.ConnectP99Ms, res.ConnectMaxMs, res.ConnectErrors)
	for k, v := range res.ConnectErrorMsg {
		logf("  connect error x%d: %s", v, k)
	}
	if len(subs) == 0 || len(pubs) == 0 {
		res.Error = "no subscriber or no publisher connected"
		closeAll(sd.conns)
		closeAll(slowd.conns)
		closeAll(pd.conns)
		res.WallS = round3(time.Since(wallStart).Seconds())
		emitJSON(res)
		fmt.Fprintln(os.Stderr, "redisws-bench:", res.Error)
		return 1
	}

	for _, s := range subs {
		readers.Add(1)
		go func(s *subscriber) {
			defer readers.Done()
			s.read(c, run, pubRoom, &stopping)
		}(s)
	}
	for _, p := range pubs {
		readers.Add(1)
		go func(p *publisher) {
			defer readers.Done()
			p.drain(&stopping)
		}(p)
	}

	time.Sleep(c.settle)

	// Send: message k of the whole run (k = 0..N-1) is due at k/R and is sent
	// by publisher k mod P, so the publishers together form one even stream.
	n := uint64(math.Round(c.rate * c.duration.Seconds()))
	np := uint64(len(pubs))
	for _, p := range pubs {
		if n > uint64(p.id) {
			p.quota = (n-1-uint64(p.id))/np + 1
		}
	}
	logf("sending %d messages of %d B at %.0f/s for %v over %d publisher(s) ...", n, c.size, c.rate, c.duration, len(pubs))
	sendStart := time.Now()
	var pw sync.WaitGroup
	for _, p := range pubs {
		pw.Add(1)
		go func(p *publisher) {
			defer pw.Done()
			p.send(c, run, np, sendStart)
		}(p)
	}
	pw.Wait()
	sendEnd := time.Now()
	var firstSend, lastSend int64 = math.MaxInt64, 0
	for _, p := range pubs {
		res.Sent += p.sent
		res.SendErrors += p.errs
		if p.sendErr != nil && res.SendError == "" {
			res.SendError = p.sendErr.Error()
		}
		if p.sent > 0 {
			firstSend = min(firstSend, p.firstNs)
			lastSend = max(lastSend, p.lastNs)
		}
	}
	res.SendWindowS = round3(sendEnd.Sub(sendStart).Seconds())
	if res.SendWindowS > 0 {
		res.SentPerS = round3(float64(res.Sent) / sendEnd.Sub(sendStart).Seconds())
	}

	// Drain: wait until every live subscriber has every message of its
	// room, or -drain passed.
	sentIn := roomSent(c, pubs)
	drainStart := time.Now()
	drainEnd := drainStart.Add(c.drain)
	for i := 0; ; i++ {
		var aliveRecv, aliveWant uint64
		alive := 0
		for _, s := range subs {
			if !s.dead.Load() {
				alive++
				aliveRecv += s.received.Load()
				aliveWant += sentIn[s.room]
			}
		}
		if aliveRecv >= aliveWant {
			res.Complete = alive == len(subs)
			break
		}
		if !time.Now().Before(drainEnd) || i > 100000 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.DrainUsedS = round3(time.Since(drainStart).Seconds())
	res.RSSAfterKB = sumRSSKB(c.pids)

	// Stop: close everything, wait (bounded) for the readers.
	stopping.Store(true)
	closeAll(sd.conns)
	closeAll(pd.conns)
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		res.Error = "some readers did not stop within 10s after close"
	}
	if res.SlowConnected > 0 {
		logf("reading %d slow connections until they end or stay quiet for %v ...", res.SlowConnected, slowQuiet)
		t0 := time.Now()
		res.SlowEnds, res.SlowFramesRead = checkSlow(slowd.conns)
		res.SlowClosed, res.SlowOpen = slowClosed(res.SlowEnds)
		res.SlowCheckS = round3(time.Since(t0).Seconds())
	}
	closeAll(slowd.conns)

	var h hist
	var lastRecv int64
	for _, s := range subs {
		h.merge(&s.h)
		res.Received += s.received.Load()
		res.Duplicates += s.dups
		res.Reordered += s.reordered
		res.Foreign += s.foreign
		res.CrossRoom += s.crossRoom
		res.Malformed += s.malformed
		lastRecv = max(lastRecv, s.lastNs.Load())
		if s.dead.Load() {
			res.SubDisconnects++
			res.SubCloseCodes[closeKey(s.endErr)]++
		}
	}
	for _, p := range pubs {
		res.PubReceived += p.received.Load()
		if p.dead.Load() {
			res.PubDisconnects++
			res.PubCloseCodes[closeKey(p.endErr)]++
		}
	}
	stats := roomStats(c, subs, pubs)
	res.RoomSubsMin = len(subs)
	for _, st := range stats {
		res.Expected += st.Expected
		res.RoomSubsMin = min(res.RoomSubsMin, st.Subs)
		res.RoomSubsMax = max(res.RoomSubsMax, st.Subs)
		if st.Loss != 0 {
			res.RoomsWithLoss++
		}
	}
	if c.rooms > 0 {
		res.RoomStats = stats
	}
	res.Loss = int64(res.Expected) - int64(res.Received)
	if res.Expected > 0 {
		res.LossPct = round3(100 * float64(res.Loss) / float64(res.Expected))
	}
	if lastRecv > firstSend && firstSend != math.MaxInt64 {
		w := float64(lastRecv-firstSend) / 1e9
		res.DeliveriesWindowS = round3(w)
		res.DeliveriesPerS = round3(float64(res.Received) / w)
	}
	res.LatencyP50Ms = usToMs(h.quantile(0.50))
	res.LatencyP90Ms = usToMs(h.quantile(0.90))
	res.LatencyP99Ms = usToMs(h.quantile(0.99))
	res.LatencyMaxMs = usToMs(h.maxUs)
	res.LatencyMeanMs = round3(h.meanUs() / 1000)
	res.WallS = round3(time.Since(wallStart).Seconds())

	emitJSON(res)
	if !c.jsonOnly {
		printFanout(res)
	}
	return 0
}

// read is the one reader of a subscriber connection. pubRoom is the room
// of each sender id.
func (s *subscriber) read(c *config, run uint32, pubRoom []int, stopping *atomic.Bool) {
	buf := make([]byte, max(c.size, headerSize))
	for {
		_, r, err := s.conn.NextReader()
		if err != nil {
			if !stopping.Load() {
				s.endErr = err
				s.dead.Store(true)
			}
			return
		}
		n, err := io.ReadFull(r, buf)
		switch err {
		case nil:
			// buffer full: the frame may be longer than -size; skip the rest
			if m, _ := io.Copy(io.Discard, r); m > 0 {
				s.malformed++
				continue
			}
		case io.EOF, io.ErrUnexpectedEOF:
		default:
			if !stopping.Load() {
				s.endErr = err
				s.dead.Store(true)
			}
			return
		}
		now := nowNs()
		hd, err := parseHeader(buf[:n])
		if err != nil {
			s.malformed++
			continue
		}
		if hd.run != run || int(hd.sender) >= len(s.tracks) {
			s.foreign++
			continue
		}
		if pubRoom[hd.sender] != s.room {
			s.crossRoom++
			continue
		}
		dup, reord := s.tracks[hd.sender].add(hd.seq)
		if dup {
			s.dups++
			continue
		}
		if reord {
			s.reordered++
		}
		lat := now - hd.sentNs
		if lat < 0 {
			lat = 0
		}
		s.h.record(uint64(lat / 1000))
		s.lastNs.Store(now)
		s.received.Add(1)
	}
}

// drain reads and discards what a publisher gets back (its own and others'
// messages), so that the server never sees it as a slow client.
func (p *publisher) drain(stopping *atomic.Bool) {
	for {
		_, r, err := p.conn.NextReader()
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		}
		if err != nil {
			if !stopping.Load() {
				p.endErr = err
				p.dead.Store(true)
			}
			return
		}
		p.received.Add(1)
	}
}

// send paces this publisher's share of the run: its j-th message is global
// message k = j*np + id, due at k/rate after start. On every tick it sends
// every message that is due (a burst when the timer was late), so the rate
// holds whatever the timer resolution. It stops when its share is sent, at
// -duration plus a short grace, or on the first write error.
func (p *publisher) send(c *config, run uint32, np uint64, start time.Time) {
	if p.quota == 0 {
		return
	}
	perPub := c.rate / float64(np)
	tick := time.Duration(float64(time.Second) / perPub)
	tick = min(max(tick, time.Millisecond), 10*time.Millisecond)
	// Grace after -duration for the messages already due by then, when the
	// last tick fires late (busy machine); whatever is left after it is not sent.
	stop := start.Add(c.duration + max(2*tick, 100*time.Millisecond))
	buf := newPayload(c.size, run, p.id)
	id := uint64(p.id)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for {
		now := time.Now()
		el := now.Sub(start)
		if el > c.duration {
			el = c.duration
		}
		// messages k = 0..floor(el*rate) are due; this publisher's share of them
		due := uint64(0)
		if k := uint64(el.Seconds() * c.rate); k+1 > id {
			due = (k-id)/np + 1
		}
		due = min(due, p.quota)
		if p.sent < due {
			_ = p.conn.SetWriteDeadline(now.Add(5 * time.Second))
		}
		for p.sent < due {
			if time.Now().After(stop) {
				return
			}
			ts := nowNs()
			stamp(buf, p.sent+1, ts)
			if err := p.conn.WriteMessage(websocket.TextMessage, buf); err != nil {
				p.errs++
				p.sendErr = err
				return
			}
			if p.sent == 0 {
				p.firstNs = ts
			}
			p.lastNs = ts
			p.sent++
		}
		if p.sent >= p.quota || now.After(stop) {
			return
		}
		<-ticker.C
	}
}

func printFanout(r *fanoutResult) {
	w := os.Stderr
	fmt.Fprintf(w, "\n== fanout: %d subs, %d pubs over %d node(s), %d B, asked %.0f msg/s for %.1fs ==\n",
		r.Subs, r.Pubs, len(r.URLs), r.SizeBytes, r.RateAsked, r.DurationS)
	if r.Label != "" {
		fmt.Fprintf(w, "label       %s\n", r.Label)
	}
	fmt.Fprintf(w, "connect     %d/%d subs, %d/%d pubs, %d errors; handshake p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		r.SubsConnected, r.Subs, r.PubsConnected, r.Pubs, r.ConnectErrors, r.ConnectP50Ms, r.ConnectP99Ms, r.ConnectMaxMs)
	fmt.Fprintf(w, "sent        %d in %.2fs = %.1f msg/s, %d send errors\n", r.Sent, r.SendWindowS, r.SentPerS, r.SendErrors)
	fmt.Fprintf(w, "deliveries  %d of %d expected (loss %d = %.3f%%), %d duplicates, %d reordered, %d foreign, %d malformed\n",
		r.Received, r.Expected, r.Loss, r.LossPct, r.Duplicates, r.Reordered, r.Foreign, r.Malformed)
	if r.Rooms > 0 {
		fmt.Fprintf(w, "rooms       %d, %d to %d subscribers each, %d with loss, %d cross-room deliveries\n",
			r.Rooms, r.RoomSubsMin, r.RoomSubsMax, r.RoomsWithLoss, r.CrossRoom)
	}
	fmt.Fprintf(w, "throughput  %.0f deliveries/s (received / (last receipt - first send) = %.2fs); drain used %.2fs, complete=%v\n",
		r.DeliveriesPerS, r.DeliveriesWindowS, r.DrainUsedS, r.Complete)
	fmt.Fprintf(w, "latency     p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms, mean %.2f ms\n",
		r.LatencyP50Ms, r.LatencyP90Ms, r.LatencyP99Ms, r.LatencyMaxMs, r.LatencyMeanMs)
	fmt.Fprintf(w, "disconnects subs %d %s, pubs %d %s\n", r.SubDisconnects, codes(r.SubCloseCodes), r.PubDisconnects, codes(r.PubCloseCodes))
	if r.Slow > 0 {
		fmt.Fprintf(w, "slow        %d/%d connected; at the end %d closed by the server, %d still open %s; %d frames read in %.1fs\n",
			r.SlowConnected, r.Slow, r.SlowClosed, r.SlowOpen, codes(r.SlowEnds), r.SlowFramesRead, r.SlowCheckS)
	}
	if r.RSSAfterKB >= 0 {
		fmt.Fprintf(w, "server RSS  before %d KB, after %d KB (sum over pids)\n", r.RSSBeforeKB, r.RSSAfterKB)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "error       %s\n", r.Error)
	}
	fmt.Fprintf(w, "wall        %.1fs\n", r.WallS)
}

func codes(m map[string]int) string {
	if len(m) == 0 {
		return "(none)"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := "("
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s x%d", k, m[k])
	}
	return s + ")"
}
