package main

import (
	"encoding/json"
	"fmt"
	"testing"
)

func TestRoomsPlan(t *testing.T) {
	for _, p := range []roomsPlan{
		{nodes: 2, conns: 400, perConn: 20, rooms: 800, pubs: 40},
		{nodes: 2, conns: 1000, perConn: 20, rooms: 2000, pubs: 40},
		{nodes: 3, conns: 30, perConn: 4, rooms: 10, pubs: 3},
	} {
		t.Run(fmt.Sprintf("%d×%d of %d on %d", p.conns, p.perConn, p.rooms, p.nodes), func(t *testing.T) {
			if err := p.check(); err != nil {
				t.Fatal(err)
			}
			perNode := make([]int, p.nodes)
			nodesOfRoom := make([]map[int]bool, p.rooms)
			for i := 0; i < p.conns; i++ {
				perNode[p.nodeOf(i)]++
				seen := map[int]bool{}
				for _, r := range p.roomsOf(i) {
					if seen[r] {
						t.Fatalf("connection %d follows room %d twice", i, r)
					}
					seen[r] = true
					if nodesOfRoom[r] == nil {
						nodesOfRoom[r] = map[int]bool{}
					}
					nodesOfRoom[r][p.nodeOf(i)] = true
				}
			}
			for n, k := range perNode {
				if k != p.conns/p.nodes {
					t.Errorf("node %d has %d connections, want %d", n, k, p.conns/p.nodes)
				}
			}
			for r, nodes := range nodesOfRoom {
				if len(nodes) != p.nodes {
					t.Errorf("room %d has subscribers on %d of %d nodes", r, len(nodes), p.nodes)
				}
			}
			subs := p.subscribers()
			for r, n := range subs {
				if n != subs[0] {
					t.Fatalf("room %d has %d subscribers, room 0 %d: uneven", r, n, subs[0])
				}
			}
			owner := make([]int, p.rooms)
			for i := range owner {
				owner[i] = -1
			}
			for pub := 0; pub < p.pubs; pub++ {
				for _, r := range p.pubRooms(pub) {
					if owner[r] != -1 {
						t.Fatalf("room %d has publishers %d and %d", r, owner[r], pub)
					}
					owner[r] = pub
				}
			}
			for r, o := range owner {
				if o == -1 {
					t.Fatalf("room %d has no publisher", r)
				}
			}
		})
	}
}

func TestRoomsPlanRefused(t *testing.T) {
	for _, p := range []roomsPlan{
		{nodes: 2, conns: 10, perConn: 20, rooms: 10, pubs: 1},   // more rooms per connection than rooms
		{nodes: 2, conns: 10, perConn: 2, rooms: 100, pubs: 1},   // rooms nobody follows
		{nodes: 2, conns: 400, perConn: 20, rooms: 8, pubs: 9},   // publishers without a room
		{nodes: 0, conns: 400, perConn: 20, rooms: 800, pubs: 1}, // no node
	} {
		if err := p.check(); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

func TestRoomsWire(t *testing.T) {
	payload := newPayload(64, 0xabcdef01, 17)
	stamp(payload, 3, 1764000000123456789)
	for _, srv := range []roomsServer{serverRedisWS, serverCentrifugo} {
		var cmd map[string]any
		if err := json.Unmarshal(srv.publishCmd(nil, 9, 17, payload), &cmd); err != nil {
			t.Fatalf("%s publish is not JSON: %v", srv, err)
		}
		if err := json.Unmarshal(srv.subscribeCmd(4, 17), &cmd); err != nil {
			t.Fatalf("%s subscribe is not JSON: %v", srv, err)
		}
	}
	var ours map[string]any
	_ = json.Unmarshal(serverRedisWS.publishCmd(nil, 9, 17, payload), &ours)
	if ours["cmd"] != "publish" || ours["channel"] != "room:17" || ours["data"] != string(payload) || ours["id"] != 9.0 {
		t.Errorf("redis_ws.v2 publish: %v", ours)
	}
	if serverRedisWS.connectCmd() != nil || serverCentrifugo.connectCmd() == nil {
		t.Error("only Centrifugo connects by command")
	}

	// a delivery of each server, several Centrifugo pushes in one frame
	for _, frame := range []string{
		`{"channel":"room:17","data":"` + string(payload) + `"}`,
		`{"channel":"room:17","offset":4,"epoch":"e","data":"` + string(payload) + `"}`,
		`{"push":{"channel":"room:17","pub":{"data":"` + string(payload) + `"}}}`,
	} {
		data, ok := deliveryData([]byte(frame))
		if !ok || string(data) != string(payload) {
			t.Errorf("%s: data %q, %v", frame, data, ok)
		}
	}
	for _, frame := range []string{`{"type":"subscribed","id":1,"channel":"room:1"}`, `{"id":2,"subscribe":{}}`, `{}`, `{"data":"unterminated`} {
		if _, ok := deliveryData([]byte(frame)); ok {
			t.Errorf("%s taken for a delivery", frame)
		}
	}

	for frame, want := range map[string]reply{
		`{"type":"subscribed","id":3,"channel":"room:1"}`:                             {id: 3},
		`{"type":"error","id":4,"channel":"room:1","code":"forbidden","reason":"no"}`: {id: 4, error: "forbidden: no"},
		`{"id":2,"subscribe":{}}`:                                                     {id: 2},
		`{"id":5,"error":{"code":103,"message":"permission denied"}}`:                 {id: 5, error: `{"code":103,"message":"permission denied"}`},
		`{}`: {ping: true},
	} {
		got, err := parseReply([]byte(frame))
		if err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", frame, got, err, want)
		}
	}
	if _, err := parseReply([]byte(`not json`)); err == nil {
		t.Error("junk parsed")
	}
	if _, err := parseRoomsServer("nats"); err == nil {
		t.Error("-server nats accepted")
	}
}

func TestRoomsConnAccount(t *testing.T) {
	rc := newRoomsConn(nil, 0, []int{3, 5})
	rc.firstID = 2
	rc.subSent = []int64{nowNs(), nowNs()}
	const run = 0x1234
	msg := func(room int, seq uint64) []byte {
		p := newPayload(64, run, room)
		stamp(p, seq, nowNs())
		return []byte(`{"push":{"channel":"room:x","pub":{"data":"` + string(p) + `"}}}`)
	}
	for _, m := range [][]byte{
		msg(3, 1), msg(3, 2), msg(5, 1), // three deliveries
		msg(3, 2),                         // a duplicate
		msg(4, 1),                         // a room it does not follow
		[]byte(`{"id":2,"subscribe":{}}`), // room 3 subscribed
		[]byte(`{"id":3,"error":{"code":103,"message":"x"}}`), // room 5 refused
		[]byte(`{"id":9,"publish":{}}`),                       // not a subscribe's answer
	} {
		if err := rc.handle(m, nowNs(), run); err != nil {
			t.Fatal(err)
		}
	}
	other := newPayload(64, run+1, 3)
	stamp(other, 1, nowNs())
	rc.account(other, nowNs(), run)
	rc.account([]byte("junk"), nowNs(), run)
	if rc.received.Load() != 3 || rc.dups != 1 || rc.crossRoom != 1 || rc.foreign != 1 || rc.malformed != 1 {
		t.Errorf("received %d, dups %d, cross-room %d, foreign %d, malformed %d", rc.received.Load(), rc.dups, rc.crossRoom, rc.foreign, rc.malformed)
	}
	if rc.subOK.Load() != 1 || rc.subErrs != 1 || rc.subLat.n != 2 || rc.h.n != 3 {
		t.Errorf("subscribed %d, refused %d, subscribe answers timed %d, deliveries timed %d", rc.subOK.Load(), rc.subErrs, rc.subLat.n, rc.h.n)
	}
}

func TestManyroomsCounts(t *testing.T) {
	c := &config{pids: []int{11, 12}, duration: 2e9}
	subs := []*roomsConn{newRoomsConn(nil, 0, []int{0, 1}), newRoomsConn(nil, 1, []int{1, 2})}
	subs[0].received.Store(30)
	subs[1].received.Store(39)
	subs[1].tracks[0].add(1)
	pubs := []*roomsPub{{rooms: []int{0, 2}, sent: 20}, {rooms: []int{1}, sent: 10}}
	sentIn := []uint64{10, 10, 10}
	res := &manyroomsResult{SubCloseCodes: map[string]int{}, PubCloseCodes: map[string]int{}, SendWindowS: 2,
		RSSBeforeKB: []int64{1000, 1000}, RSSSubscribedKB: []int64{1002, 1002}, Subscribed: 4}
	res.count(c, subs, pubs, sentIn)
	if res.Sent != 30 || res.SentPerS != 15 || res.Expected != 40 || res.Received != 69 || res.Loss != -29 || res.ExpectedPerS != 20 {
		t.Errorf("sent %d (%g/s), expected %d (%g/s), received %d, loss %d", res.Sent, res.SentPerS, res.Expected, res.ExpectedPerS, res.Received, res.Loss)
	}
	res.nodeCosts(c, subs, []int64{100, 5}, []int64{130, 44}, []int64{0, 0}, []int64{100, 50})
	if res.BytesPerSubscription != 1024 {
		t.Errorf("%g B per subscription, want 4 KiB over 4", res.BytesPerSubscription)
	}
	if fmt.Sprint(res.NodeWrites, res.NodeDeliveries, res.WritesPerDelivery, res.NodeCPUS) != "[30 39] [30 39] [1 1] [1 0.5]" {
		t.Errorf("writes %v for deliveries %v = %v; CPU %v", res.NodeWrites, res.NodeDeliveries, res.WritesPerDelivery, res.NodeCPUS)
	}
	res.nodeCosts(c, subs, []int64{-1, 5}, []int64{130, 44}, []int64{0, 0}, []int64{0, 0})
	if res.WritesPerDelivery[0] != -1 || res.WritesPerDelivery[1] != 1 {
		t.Errorf("unreadable syscw gave %v", res.WritesPerDelivery)
	}
}
