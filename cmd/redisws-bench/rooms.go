package main

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// checkURLTemplate: with rooms > 0 a URL must contain {room}, outside its
// host; without rooms it must not contain it.
func checkURLTemplate(raw string, rooms int) error {
	has := strings.Contains(raw, "{room}")
	if rooms == 0 {
		if has {
			return errors.New("contains {room}: give -rooms N")
		}
		return nil
	}
	if !has {
		return errors.New("-rooms needs URL templates containing {room}, e.g. ws://127.0.0.1:8001/rooms/{room}")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if strings.Contains(u.Host, "{") || strings.Contains(u.User.String(), "{") {
		return errors.New("{room} may only appear in the path or the query")
	}
	return nil
}

// roomURL is the URL of room r: {room} replaced with its name.
func roomURL(tmpl string, r int) string {
	return strings.ReplaceAll(tmpl, "{room}", roomName(r))
}

func roomName(r int) string { return "r" + strconv.Itoa(r) }

// place spreads n connections over rooms and nodes. Connection i joins room
// i mod R (R = -rooms, or 1 for the one shared channel); the k-th member of
// room r goes to node (r+k) mod len(-urls), so every room with two members or
// more has members on two nodes, and the nodes get even shares. Without
// -rooms this is plain round-robin over -urls.
func place(c *config, n int) (targets []string, rooms []int) {
	nr := max(c.rooms, 1)
	targets, rooms = make([]string, n), make([]int, n)
	for i := range targets {
		r := i % nr
		u := c.urls[(r+i/nr)%len(c.urls)]
		if c.rooms > 0 {
			u = roomURL(u, r)
		}
		targets[i], rooms[i] = u, r
	}
	return targets, rooms
}

// roomStat is one room in the JSON line (with -rooms).
type roomStat struct {
	Room     string `json:"room"`
	Subs     int    `json:"subs"`
	Pubs     int    `json:"pubs"`
	Sent     uint64 `json:"sent"`
	Expected uint64 `json:"expected"`
	Received uint64 `json:"received"`
	Loss     int64  `json:"loss"`
}

// roomSent is what the publishers of each room sent.
func roomSent(c *config, pubs []*publisher) []uint64 {
	sent := make([]uint64, max(c.rooms, 1))
	for _, p := range pubs {
		sent[p.room] += p.sent
	}
	return sent
}

// roomStats counts each room's members, messages and deliveries: a room's
// expected deliveries are its messages times its subscribers.
func roomStats(c *config, subs []*subscriber, pubs []*publisher) []roomStat {
	st := make([]roomStat, max(c.rooms, 1))
	for r := range st {
		if c.rooms > 0 {
			st[r].Room = roomName(r)
		}
	}
	for _, p := range pubs {
		st[p.room].Pubs++
		st[p.room].Sent += p.sent
	}
	for _, s := range subs {
		st[s.room].Subs++
		st[s.room].Received += s.received.Load()
	}
	for r := range st {
		st[r].Expected = st[r].Sent * uint64(st[r].Subs)
		st[r].Loss = int64(st[r].Expected) - int64(st[r].Received)
	}
	return st
}
