package main

import (
	"io"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// publisher is one sending connection of a fanout run: it sends its share
// of the run's paced, stamped messages and discards what it gets back.
type publisher struct {
	id   int // sender id in the payloads
	room int
	conn *websocket.Conn

	sent     uint64
	errs     uint64
	firstNs  int64
	quota    uint64
	received atomic.Uint64 // frames the publisher got back (not deliveries)
	sendErr  error
	readerEnd
}

// shareOut sets each publisher's quota of the run's n messages: message k
// (k = 0..n-1) is due at k/rate and is sent by publisher k mod len(pubs), so
// the publishers together form one even stream.
func shareOut(pubs []*publisher, n uint64) {
	np := uint64(len(pubs))
	for _, p := range pubs {
		if n > uint64(p.id) {
			p.quota = (n-1-uint64(p.id))/np + 1
		}
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
	if c.payload == "chat" {
		buf = newChatPayload(c.size, run, p.id)
	}
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
			p.sent++
		}
		if p.sent >= p.quota || now.After(stop) {
			return
		}
		<-ticker.C
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
			p.end(err, stopping)
			return
		}
		p.received.Add(1)
	}
}
