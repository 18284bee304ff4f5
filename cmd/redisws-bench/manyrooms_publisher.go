package main

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// roomsPub is one publisher of a manyrooms run: a connection like an
// application's that sends publish commands (redis_ws.v2 publish, or
// Centrifugo's publish) to its rooms, each at -room-rate, stamped 64-byte
// payloads whose sender id is the room. Its sender goroutine writes the
// commands, its reader takes the answers and answers Centrifugo's pings:
// mu orders their writes.
type roomsPub struct {
	conn  *websocket.Conn
	rooms []int
	mu    sync.Mutex

	sentIn  []uint64 // by index in rooms
	sent    uint64
	errs    uint64
	sendErr error
	firstNs int64

	answered atomic.Uint64 // published answers
	refused  atomic.Uint64 // error answers
	refusal  atomic.Value  // the first refusal, a string
	readerEnd
}

// send publishes, for every room of the publisher, message k (k = 0,
// 1, ...) at start + (k + r/R)/rate, r/R spreading the rooms over the
// period, until -duration; the messages due at a tick go out then (a
// burst when the tick was late). It stops at the first write error.
func (p *roomsPub) send(c *config, srv roomsServer, run uint32, start time.Time) {
	p.sentIn = make([]uint64, len(p.rooms))
	perRoom := uint64(c.roomRate * c.duration.Seconds())
	payload := make([][]byte, len(p.rooms))
	for i, r := range p.rooms {
		payload[i] = newPayload(c.size, run, r)
	}
	stop := start.Add(c.duration + 200*time.Millisecond)
	ticker := time.NewTicker(5 * time.Millisecond)
	defer ticker.Stop()
	var cmd []byte
	id := uint64(1)
	if srv.connectCmd() != nil {
		id = 2 // 1 was the connect
	}
	for {
		el := time.Since(start).Seconds()
		done := true
		for i, r := range p.rooms {
			off := float64(r) / float64(c.rooms)
			due := uint64(0)
			if x := el*c.roomRate - off; x >= 0 {
				due = min(uint64(x)+1, perRoom)
			}
			done = done && p.sentIn[i] >= perRoom
			for p.sentIn[i] < due {
				ts := nowNs()
				stamp(payload[i], p.sentIn[i]+1, ts)
				cmd = srv.publishCmd(cmd[:0], id, r, payload[i])
				if err := p.write(cmd); err != nil {
					p.errs++
					p.sendErr = err
					return
				}
				if p.sent == 0 {
					p.firstNs = ts
				}
				id++
				p.sent++
				p.sentIn[i]++
			}
		}
		if done || time.Now().After(stop) {
			return
		}
		<-ticker.C
	}
}

func (p *roomsPub) write(msg []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return p.conn.WriteMessage(websocket.TextMessage, msg)
}

// read takes the publisher's answers (and anything else the server sends
// it) until the connection ends.
func (p *roomsPub) read(stopping *atomic.Bool) {
	var buf bytes.Buffer
	for {
		if err := readMessages(p.conn, &buf, p.take); err != nil {
			p.end(err, stopping)
			return
		}
	}
}

func (p *roomsPub) take(msg []byte) error {
	rp, err := parseReply(msg)
	switch {
	case err != nil || rp.id == 0 && !rp.ping: // not an answer
	case rp.ping:
		return p.write(pong)
	case rp.error != "":
		if p.refused.Add(1) == 1 {
			p.refusal.Store(rp.error)
		}
	default:
		p.answered.Add(1)
	}
	return nil
}
