package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// manyroomsMode runs one many-rooms measurement: -conns connections over
// the nodes, each one WebSocket subscribed by command to -per-conn of
// -rooms rooms (roomsPlan), -pubs publishers sending -size byte stamped
// messages to every room at -room-rate for -duration; then the JSON line.
func manyroomsMode(c *config) int {
	wallStart := time.Now()
	plan := roomsPlan{nodes: len(c.urls), conns: c.conns, perConn: c.perConn, rooms: c.rooms, pubs: c.pubs}
	budget := c.connectBudget(c.conns + c.pubs)
	defer startWatchdog(budget + 2*subscribeWait + c.settle + c.duration + c.drain + 40*time.Second).Stop()
	run := rand.Uint32()
	res := &manyroomsResult{
		Mode: "manyrooms", Server: string(c.server), Label: c.label, Time: time.Now().UTC().Format(time.RFC3339), URLs: c.urls,
		Conns: c.conns, PerConn: c.perConn, Rooms: c.rooms, Pubs: c.pubs, RoomRate: c.roomRate,
		DurationS: c.duration.Seconds(), SizeBytes: c.size, ConnectRate: c.connectRate, Nofile: nofile(), RunID: fmt.Sprintf("%08x", run),
		SubCloseCodes: map[string]int{}, PubCloseCodes: map[string]int{},
	}
	res.RSSBeforeKB = nodeRSS(c.pids)
	var stopping atomic.Bool
	var readers sync.WaitGroup

	// Subscribers: each subscribes as soon as it is open, while the others connect.
	c.logf("connecting %d %s connections × %d of %d rooms over %d node(s) at %.0f/s ...",
		c.conns, c.server, c.perConn, c.rooms, len(c.urls), c.connectRate)
	connStart := time.Now()
	targets := make([]string, c.conns)
	for i := range targets {
		targets[i] = c.urls[plan.nodeOf(i)]
	}
	opened := make([]*roomsConn, c.conns)
	sd := dialAllThen(c, targets, 32<<10, 4096, connStart.Add(budget), nil, func(i int, conn *websocket.Conn) {
		rc := newRoomsConn(conn, plan.nodeOf(i), plan.roomsOf(i))
		opened[i] = rc
		readers.Add(1)
		go func() {
			defer readers.Done()
			rc.session(c.server, run, c.handshake, &stopping)
		}()
	})
	var subs []*roomsConn
	for _, rc := range opened {
		if rc != nil {
			subs = append(subs, rc)
		}
	}
	res.countConnects(connStart, sd)
	res.Connected = len(subs)
	res.Subscribed = awaitSubscribed(subs, time.Now().Add(subscribeWait))
	res.SubscribePhaseS = round3(time.Since(connStart).Seconds())
	c.logf("%d connected, %d of %d subscriptions in %.1fs", res.Connected, res.Subscribed, res.Connected*c.perConn, res.SubscribePhaseS)
	res.RSSSubscribedKB = nodeRSSSettled(c.pids)

	// Publishers, after the memory was read.
	pubTargets := make([]string, c.pubs)
	for i := range pubTargets {
		pubTargets[i] = c.urls[plan.pubNode(i)]
	}
	pd := dialAll(c, pubTargets, 4096, 4096, time.Now().Add(budget), nil)
	var pubs []*roomsPub
	for i, conn := range pd.conns {
		if conn == nil {
			continue
		}
		if cmd := c.server.connectCmd(); cmd != nil {
			if err := handshakeCmd(conn, cmd, c.handshake); err != nil {
				res.PubConnectErrors++
				_ = conn.Close()
				continue
			}
		}
		p := &roomsPub{conn: conn, rooms: plan.pubRooms(i)}
		pubs = append(pubs, p)
		readers.Add(1)
		go func() {
			defer readers.Done()
			p.read(&stopping)
		}()
	}
	res.PubsConnected = len(pubs)
	if len(subs) == 0 || len(pubs) == 0 {
		return res.fail(c, "no subscriber or no publisher connected", wallStart, sd, pd)
	}
	time.Sleep(c.settle)

	c.logf("publishing %d B to each of %d rooms at %g msg/s for %v over %d publishers ...", c.size, c.rooms, c.roomRate, c.duration, len(pubs))
	w0, cpu0, self0 := writeSyscalls(c.pids), cpuTicks(c.pids), selfCPU()
	sendStart := time.Now()
	var pw sync.WaitGroup
	for _, p := range pubs {
		pw.Add(1)
		go func() {
			defer pw.Done()
			p.send(c, c.server, run, sendStart)
		}()
	}
	pw.Wait()
	res.SendWindowS = round3(time.Since(sendStart).Seconds())
	sentIn := make([]uint64, c.rooms)
	for _, p := range pubs {
		for k, r := range p.rooms {
			sentIn[r] += p.sentIn[k]
		}
	}
	drainStart := time.Now()
	res.Complete = awaitRooms(subs, sentIn, drainStart.Add(c.drain))
	res.DrainUsedS = round3(time.Since(drainStart).Seconds())
	w1, cpu1 := writeSyscalls(c.pids), cpuTicks(c.pids)
	res.ToolCPUS = round3((selfCPU() - self0).Seconds())
	res.RSSAfterKB = nodeRSS(c.pids)

	stopping.Store(true)
	closeAll(sd.conns)
	closeAll(pd.conns)
	if err := awaitReaders(&readers); err != nil {
		res.Error = err.Error()
	}
	res.count(c, subs, pubs, sentIn)
	res.nodeCosts(c, subs, w0, w1, cpu0, cpu1)
	res.WallS = round3(time.Since(wallStart).Seconds())
	emitJSON(res)
	if !c.jsonOnly {
		printManyrooms(res)
	}
	return 0
}

// subscribeWait bounds the wait for every subscribe's answer.
const subscribeWait = 30 * time.Second

// awaitSubscribed polls until every connection has its rooms or one ended,
// or until deadline; it returns the subscriptions confirmed.
func awaitSubscribed(subs []*roomsConn, deadline time.Time) int {
	for {
		n, settled := 0, true
		for _, rc := range subs {
			ok := int(rc.subOK.Load())
			n += ok
			settled = settled && (ok == len(rc.rooms) || rc.dead.Load())
		}
		if settled || !time.Now().Before(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// awaitRooms polls until every live connection has every message its rooms'
// publishers sent (sentIn, by room), or until drainEnd. complete: all
// arrived and no connection ended early.
func awaitRooms(subs []*roomsConn, sentIn []uint64, drainEnd time.Time) (complete bool) {
	for {
		var got, want uint64
		alive := 0
		for _, rc := range subs {
			if rc.dead.Load() {
				continue
			}
			alive++
			got += rc.received.Load()
			for _, r := range rc.rooms {
				want += sentIn[r]
			}
		}
		if got >= want {
			return alive == len(subs)
		}
		if !time.Now().Before(drainEnd) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nodeRSS is each node's VmRSS in KiB (-1 where unreadable); nil without -pids.
func nodeRSS(pids []int) []int64 {
	var out []int64
	for _, p := range pids {
		kb, err := readRSSKB(p)
		if err != nil {
			kb = -1
		}
		out = append(out, kb)
	}
	return out
}

// nodeRSSSettled reads nodeRSS once the nodes' summed RSS stopped moving
// (at most 5 s): what the subscriptions left, not the connect phase's garbage.
func nodeRSSSettled(pids []int) []int64 {
	settleRSS(pids, 5*time.Second)
	return nodeRSS(pids)
}

// fail ends a run that cannot measure: the JSON line with the reason.
func (res *manyroomsResult) fail(c *config, why string, start time.Time, dials ...*dialResult) int {
	for _, d := range dials {
		closeAll(d.conns)
	}
	res.Error = why
	res.WallS = round3(time.Since(start).Seconds())
	emitJSON(res)
	fmt.Fprintln(os.Stderr, "redisws-bench:", why)
	return 1
}

// manyroomsChecked checks the manyrooms flags, then runs the mode.
func manyroomsChecked(c *config, server string) int {
	srv, err := parseRoomsServer(server)
	if err == nil {
		err = roomsPlan{nodes: len(c.urls), conns: c.conns, perConn: c.perConn, rooms: c.rooms, pubs: c.pubs}.check()
	}
	switch {
	case err != nil:
	case c.roomRate <= 0 || c.duration <= 0 || c.drain < 0 || c.settle < 0:
		err = fmt.Errorf("need -room-rate > 0, -duration > 0, -drain >= 0, -settle >= 0")
	case c.size < headerSize:
		err = fmt.Errorf("-size must be at least %d (the header)", headerSize)
	case c.rooms > maxSender+1:
		err = fmt.Errorf("at most %d rooms", maxSender+1)
	case len(c.pids) > 0 && len(c.pids) != len(c.urls):
		err = fmt.Errorf("-pids: one per URL, in the same order (%d pids, %d URLs)", len(c.pids), len(c.urls))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "redisws-bench: manyrooms:", err)
		return 2
	}
	c.server = srv
	c.subprotocols = srv.subprotocols()
	return manyroomsMode(c)
}
