package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// fanoutMode runs one fanout measurement: connect, send, drain, stop, then
// prints the JSON line (and a summary on stderr).
func fanoutMode(c *config) int {
	wallStart := time.Now()
	total := c.subs + c.slow + c.pubs
	connectBudget := c.connectBudget(total)
	hardStop := connectBudget + c.settle + c.duration + c.drain + 20*time.Second
	if c.slow > 0 {
		hardStop += slowCheckMax + slowQuiet + 5*time.Second
	}
	defer startWatchdog(hardStop).Stop()

	run := rand.Uint32()
	res := &fanoutResult{
		Mode: "fanout", Label: c.label, Transport: c.transport, Compress: c.compress, CheckEvery: c.checkEvery, Payload: c.payload, Time: time.Now().UTC().Format(time.RFC3339), URLs: c.urls,
		Subs: c.subs, Pubs: c.pubs, Rooms: c.rooms, Slow: c.slow, RateAsked: c.rate, DurationS: c.duration.Seconds(),
		SizeBytes: c.size, DrainMaxS: c.drain.Seconds(), ConnectRate: c.connectRate,
		Nofile: nofile(), RunID: fmt.Sprintf("%08x", run),
		SubCloseCodes: map[string]int{}, PubCloseCodes: map[string]int{},
		RSSBeforeKB: sumRSSKB(c.pids), RSSAfterKB: -1,
	}

	// Connect: subscribers first, then the slow ones, then publishers, each
	// spread over rooms and URLs by place.
	c.logf("connecting %d subscribers (+%d slow) and %d publishers to %d node(s), %d room(s) (0: one channel), at %.0f/s ...",
		c.subs, c.slow, c.pubs, len(c.urls), c.rooms, c.connectRate)
	connStart := time.Now()
	deadline := connStart.Add(connectBudget)
	subTargets, subRooms := place(c, c.subs)
	slowTargets, _ := place(c, c.slow)
	pubTargets, pubRooms := place(c, c.pubs)
	var sd *dialResult
	var subWire atomic.Int64 // bytes the WebSocket subscribers read
	if c.transport == "sse" {
		sd = dialAllSSE(c, subTargets, 4096, deadline)
	} else {
		sd = dialAll(c, subTargets, 4096, 1024, deadline, &subWire)
	}
	slowd := dialAll(c, slowTargets, 1024, 1024, deadline, nil)
	pd := dialAll(c, pubTargets, 4096, 4096, deadline, nil)
	res.countConnects(connStart, sd, slowd, pd)

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
		subs = append(subs, &subscriber{conn: conn, room: subRooms[i], tracks: make([]seqTrack, len(pubs)), countOnly: i%c.checkEvery != 0})
	}
	for i, st := range sd.streams {
		if st == nil {
			continue
		}
		subs = append(subs, &subscriber{stream: st, room: subRooms[i], tracks: make([]seqTrack, len(pubs))})
	}
	for _, conn := range slowd.conns {
		if conn != nil {
			res.SlowConnected++
		}
	}
	res.SubsConnected, res.PubsConnected = len(subs), len(pubs)
	c.logf("connected %d/%d subscribers, %d/%d slow, %d/%d publishers in %.2fs (handshake p50 %.1f ms, p99 %.1f ms, max %.1f ms), %d errors",
		len(subs), c.subs, res.SlowConnected, c.slow, len(pubs), c.pubs, res.ConnectPhaseS, res.ConnectP50Ms, res.ConnectP99Ms, res.ConnectMaxMs, res.ConnectErrors)
	for k, v := range res.ConnectErrorMsg {
		c.logf("  connect error x%d: %s", v, k)
	}
	if len(subs) == 0 || len(pubs) == 0 {
		res.Error = "no subscriber or no publisher connected"
		closeAll(sd.conns)
		closeStreams(sd.streams)
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
			if s.stream != nil {
				s.readSSE(c, run, pubRoom, &stopping)
				return
			}
			if s.countOnly {
				s.countFrames(&stopping)
				return
			}
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

	// Send: -rate × -duration messages, shared out over the publishers.
	n := uint64(math.Round(c.rate * c.duration.Seconds()))
	np := uint64(len(pubs))
	shareOut(pubs, n)
	c.logf("sending %d messages of %d B at %.0f/s for %v over %d publisher(s) ...", n, c.size, c.rate, c.duration, len(pubs))
	cpu0, wire0 := cpuTicks(c.pids), subWire.Load()
	latSum0, latCount0, latOK := fanoutLatency(c.admin)
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
	firstSend := res.countSends(pubs, sendStart, sendEnd)

	// Drain: wait until every live subscriber has every message of its
	// room, or -drain passed.
	sentIn := roomSent(c, pubs)
	drainStart := time.Now()
	res.Complete = awaitDeliveries(subs, sentIn, drainStart.Add(c.drain))
	res.DrainUsedS = round3(time.Since(drainStart).Seconds())
	res.RSSAfterKB = sumRSSKB(c.pids)
	res.SubWireBytes = subWire.Load() - wire0
	for i, t := range cpuTicks(c.pids) {
		res.NodeCPUS = append(res.NodeCPUS, round3(float64(t-cpu0[i])/userHZ))
	}
	if latSum, latCount, ok := fanoutLatency(c.admin); ok && latOK && latCount > latCount0 {
		res.NodeFanoutMeanMs = round3(1000 * (latSum - latSum0) / (latCount - latCount0))
	}

	// Stop: close everything, wait (bounded) for the readers.
	stopping.Store(true)
	closeAll(sd.conns)
	closeStreams(sd.streams)
	closeAll(pd.conns)
	if err := awaitReaders(&readers); err != nil {
		res.Error = err.Error()
	}
	if res.SlowConnected > 0 {
		c.logf("reading %d slow connections until they end or stay quiet for %v ...", res.SlowConnected, slowQuiet)
		t0 := time.Now()
		res.SlowEnds, res.SlowFramesRead = checkSlow(slowd.conns)
		res.SlowClosed, res.SlowOpen = slowClosed(res.SlowEnds)
		res.SlowCheckS = round3(time.Since(t0).Seconds())
	}
	closeAll(slowd.conns)

	res.countDeliveries(c, subs, pubs, firstSend)
	res.WallS = round3(time.Since(wallStart).Seconds())

	emitJSON(res)
	if !c.jsonOnly {
		printFanout(res)
	}
	return 0
}

// awaitDeliveries polls until every live subscriber has received every
// message its room's publishers sent (sentIn, by room), or until drainEnd.
// complete: all arrived and no subscriber ended early.
func awaitDeliveries(subs []*subscriber, sentIn []uint64, drainEnd time.Time) (complete bool) {
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
			return alive == len(subs)
		}
		if !time.Now().Before(drainEnd) || i > 100000 {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readerEnd is how the reader of a fanout connection ended, when that was
// before the run stopped it.
type readerEnd struct {
	dead   atomic.Bool // ended before the run stopped it
	endErr error       // why; set before dead
}

// end records err as the connection's end, unless the run is stopping.
func (e *readerEnd) end(err error, stopping *atomic.Bool) {
	if !stopping.Load() {
		e.endErr = err
		e.dead.Store(true)
	}
}
