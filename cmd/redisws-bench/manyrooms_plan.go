package main

import "fmt"

// roomsPlan says, for a manyrooms run, which node each connection goes to,
// which rooms it follows and which rooms each publisher sends to.
//
// Connection i goes to node i mod G (G = len(-urls), round-robin as place
// does). The connections come in groups of G consecutive ones, one on each
// node; group q follows rooms qK .. qK+K-1 (mod R). So every room that
// a group covers has subscribers on every node, and with N/G×K a multiple
// of R every room has the same number of them.
// Publisher p sends to the rooms r with r mod P = p and is on node p mod G.
type roomsPlan struct {
	nodes, conns, perConn, rooms, pubs int
}

// check refuses a plan that would leave a room without subscribers or a
// connection with a room twice.
func (p roomsPlan) check() error {
	switch {
	case p.nodes < 1 || p.conns < 1 || p.perConn < 1 || p.rooms < 1 || p.pubs < 1:
		return fmt.Errorf("need at least one node, connection, room per connection, room and publisher")
	case p.perConn > p.rooms:
		return fmt.Errorf("-per-conn %d is more than -rooms %d", p.perConn, p.rooms)
	case p.pubs > p.rooms:
		return fmt.Errorf("-pubs %d is more than -rooms %d: a publisher would have no room", p.pubs, p.rooms)
	case p.groups()*p.perConn < p.rooms:
		return fmt.Errorf("%d connections in groups of %d follow %d rooms each: fewer than the %d rooms",
			p.conns, p.nodes, p.perConn, p.rooms)
	}
	return nil
}

// groups is the number of complete groups of one connection per node.
func (p roomsPlan) groups() int { return p.conns / p.nodes }

func (p roomsPlan) nodeOf(conn int) int { return conn % p.nodes }

// roomsOf is the rooms connection conn follows, in the order it subscribes.
func (p roomsPlan) roomsOf(conn int) []int {
	q := conn / p.nodes
	out := make([]int, p.perConn)
	for j := range out {
		out[j] = (q*p.perConn + j) % p.rooms
	}
	return out
}

// pubNode is the node publisher pub sends through.
func (p roomsPlan) pubNode(pub int) int { return pub % p.nodes }

// pubRooms is the rooms publisher pub sends to.
func (p roomsPlan) pubRooms(pub int) []int {
	var out []int
	for r := pub; r < p.rooms; r += p.pubs {
		out = append(out, r)
	}
	return out
}

// subscribers counts each room's subscribers.
func (p roomsPlan) subscribers() []int {
	n := make([]int, p.rooms)
	for i := 0; i < p.conns; i++ {
		for _, r := range p.roomsOf(i) {
			n[r]++
		}
	}
	return n
}
