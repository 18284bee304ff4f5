package main

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
