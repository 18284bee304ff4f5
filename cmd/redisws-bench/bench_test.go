package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/gorilla/websocket"
)

func TestPayloadRoundTrip(t *testing.T) {
	b := newPayload(64, 0xdeadbeef, 42)
	stamp(b, 1234567, 1764000000123456789)
	h, err := parseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.run != 0xdeadbeef || h.sender != 42 || h.seq != 1234567 || h.sentNs != 1764000000123456789 {
		t.Fatalf("got %+v", h)
	}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			t.Fatalf("non-printable byte %q in %q", c, b)
		}
	}
	if _, err := parseHeader(b[:headerSize-1]); err == nil {
		t.Fatal("short payload accepted")
	}
	b[offSeq] = 'z'
	if _, err := parseHeader(b); err == nil {
		t.Fatal("bad digit accepted")
	}
}

func TestHistQuantiles(t *testing.T) {
	var h hist
	for v := uint64(1); v <= 100000; v++ {
		h.record(v)
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		want := q * 100000
		got := float64(h.quantile(q))
		if got < want*0.99 || got > want*1.01 {
			t.Errorf("q%.2f = %.0f, want about %.0f", q, got, want)
		}
	}
	if h.maxUs != 100000 || h.quantile(1) != 100000 {
		t.Errorf("max %d, q1 %d", h.maxUs, h.quantile(1))
	}
	for i := 0; i < 1000; i++ {
		v := rand.Uint64N(histMaxUs)
		idx := histIndex(v)
		lo := histValue(idx)
		if d := float64(lo) - float64(v); d > float64(v)/100+1 || -d > float64(v)/100+1 {
			t.Fatalf("v %d bucket %d value %d", v, idx, lo)
		}
	}
	if histIndex(1<<40) != histBuckets-1 {
		t.Fatal("clamp")
	}
}

func TestSeqTrack(t *testing.T) {
	var s seqTrack
	cases := []struct {
		seq            uint64
		dup, reordered bool
	}{
		{1, false, false}, {2, false, false}, {4, false, false}, {3, false, true},
		{3, true, false}, {4, true, false}, {5, false, false}, {100000, false, false}, {99999, false, true},
	}
	for _, c := range cases {
		d, r := s.add(c.seq)
		if d != c.dup || r != c.reordered {
			t.Fatalf("seq %d: dup %v reordered %v, want %v %v", c.seq, d, r, c.dup, c.reordered)
		}
	}
}

func TestLoopbackCheck(t *testing.T) {
	for _, u := range []string{"ws://127.0.0.1:8001/ws", "ws://[::1]:8001/ws", "ws://localhost:1/ws", "ws://127.3.4.5/x"} {
		if err := checkLoopbackURL(u, "ws", "wss"); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	for _, u := range []string{"ws://10.0.0.1/ws", "ws://192.168.1.1:80/ws", "http://127.0.0.1/ws", "ws:///ws", "ws://8.8.8.8/"} {
		if err := checkLoopbackURL(u, "ws", "wss"); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}

func TestPlace(t *testing.T) {
	c := &config{urls: []string{"ws://127.0.0.1:1/rooms/{room}", "ws://127.0.0.1:2/rooms/{room}"}, rooms: 30}
	targets, rooms := place(c, 1000)
	perNode := map[string]int{}
	perRoom := map[int]map[string]int{}
	for i, u := range targets {
		node := u[:len("ws://127.0.0.1:1")]
		if want := roomURL(c.urls[0], rooms[i])[len("ws://127.0.0.1:1"):]; u[len(node):] != want {
			t.Fatalf("connection %d: %s in room %d", i, u, rooms[i])
		}
		perNode[node]++
		if perRoom[rooms[i]] == nil {
			perRoom[rooms[i]] = map[string]int{}
		}
		perRoom[rooms[i]][node]++
	}
	if len(perNode) != 2 || perNode["ws://127.0.0.1:1"] != 500 {
		t.Errorf("nodes: %v", perNode)
	}
	if len(perRoom) != 30 {
		t.Fatalf("%d rooms", len(perRoom))
	}
	for r, m := range perRoom {
		if len(m) != 2 || m["ws://127.0.0.1:1"]-m["ws://127.0.0.1:2"] > 1 || m["ws://127.0.0.1:2"]-m["ws://127.0.0.1:1"] > 1 {
			t.Errorf("room %d: %v", r, m)
		}
	}
	// 30 publishers for 30 rooms: one each, half on each node
	targets, rooms = place(c, 30)
	n1 := 0
	for i, u := range targets {
		if rooms[i] != i {
			t.Fatalf("publisher %d in room %d", i, rooms[i])
		}
		if u[:len("ws://127.0.0.1:1")] == "ws://127.0.0.1:1" {
			n1++
		}
	}
	if n1 != 15 {
		t.Errorf("%d of 30 publishers on node 1", n1)
	}
	// no rooms: round-robin, URLs untouched
	c = &config{urls: []string{"a", "b", "c"}}
	targets, rooms = place(c, 7)
	for i := range targets {
		if targets[i] != c.urls[i%3] || rooms[i] != 0 {
			t.Fatalf("no rooms: %v %v", targets, rooms)
		}
	}
}

func TestURLTemplate(t *testing.T) {
	for _, tc := range []struct {
		url   string
		rooms int
		ok    bool
	}{
		{"ws://127.0.0.1:8001/ws", 0, true},
		{"ws://127.0.0.1:8001/rooms/{room}", 0, false},
		{"ws://127.0.0.1:8001/rooms/{room}", 3, true},
		{"ws://127.0.0.1:8001/r?room={room}", 3, true},
		{"ws://127.0.0.1:8001/ws", 3, false},
		{"ws://{room}:8001/x", 3, false},
		{"ws://{room}@127.0.0.1:8001/{room}", 3, false},
	} {
		if err := checkURLTemplate(tc.url, tc.rooms); (err == nil) != tc.ok {
			t.Errorf("%s with %d rooms: %v", tc.url, tc.rooms, err)
		}
	}
	if u := roomURL("ws://127.0.0.1:8001/rooms/{room}", 29); u != "ws://127.0.0.1:8001/rooms/r29" {
		t.Errorf("roomURL: %s", u)
	}
}

func TestRoomStats(t *testing.T) {
	c := &config{rooms: 2}
	pubs := []*publisher{{room: 0, sent: 10}, {room: 1, sent: 5}, {room: 1, sent: 5}}
	subs := []*subscriber{{room: 0}, {room: 0}, {room: 1}}
	subs[0].received.Store(10)
	subs[1].received.Store(9)
	subs[2].received.Store(10)
	st := roomStats(c, subs, pubs)
	want := []roomStat{
		{Room: "r0", Subs: 2, Pubs: 1, Sent: 10, Expected: 20, Received: 19, Loss: 1},
		{Room: "r1", Subs: 1, Pubs: 2, Sent: 10, Expected: 10, Received: 10, Loss: 0},
	}
	for i := range want {
		if st[i] != want[i] {
			t.Errorf("room %d: %+v, want %+v", i, st[i], want[i])
		}
	}
	if s := roomSent(c, pubs); s[0] != 10 || s[1] != 10 {
		t.Errorf("roomSent %v", s)
	}
}

func TestSlowEnd(t *testing.T) {
	for err, want := range map[error]string{
		&websocket.CloseError{Code: 1008}:                                             "1008",
		&websocket.CloseError{Code: 1006, Text: "unexpected EOF"}:                     "eof",
		&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}: "reset",
		os.ErrDeadlineExceeded:                                                        "timeout",
		errors.New("boom"):                                                            "error",
	} {
		if got := slowEnd(err); got != want {
			t.Errorf("%v: %s, want %s", err, got, want)
		}
	}
	closed, open := slowClosed(map[string]int{"1008": 2, "eof": 3, "reset": 1, "timeout": 4, "error": 1, "unfinished": 1})
	if closed != 6 || open != 4 {
		t.Errorf("closed %d open %d", closed, open)
	}
}

func TestReplayCheck(t *testing.T) {
	want := []string{resumeData(7, 1, 64), resumeData(7, 2, 64), resumeData(7, 3, 64)}
	if len(want[0]) != 64 || want[0] == want[1] {
		t.Fatalf("resumeData: %q %q", want[0], want[1])
	}
	msg := func(off int, data string) []byte {
		return []byte(fmt.Sprintf(`{"channel":"chat","offset":%d,"epoch":"e1","data":%q}`, off, data))
	}
	sub := []byte(`{"type":"subscribed","channel":"chat","offset":13,"epoch":"e1","recovered":true}`)

	r := newReplayCheck("e1", 10, 13, want)
	for i, tc := range []struct {
		frame []byte
		upTo  int64
	}{{sub, 10}, {msg(11, want[0]), 11}, {msg(12, want[1]), 12}, {msg(13, want[2]), 13}} {
		if got := r.add(tc.frame); got != tc.upTo {
			t.Fatalf("frame %d: up to %d, want %d", i, got, tc.upTo)
		}
	}
	if len(r.errs) != 0 {
		t.Fatalf("clean replay: %v", r.errs)
	}

	// not recovered, a gap, a duplicate, wrong data, another epoch, junk
	r = newReplayCheck("e1", 10, 13, want)
	r.add([]byte(`{"type":"subscribed","channel":"chat","offset":13,"epoch":"e1","recovered":false}`))
	r.add(msg(12, want[1]))
	r.add(msg(12, want[1]))
	r.add(msg(13, "other"))
	r.add([]byte(`{"channel":"chat","offset":14,"epoch":"e2","data":"x"}`))
	r.add([]byte(`{"channel":"chat","data":"raw"}`))
	if got := r.upTo(); got != 13 {
		t.Errorf("up to %d, want 13", got)
	}
	wantErrs := map[string]int{"not_recovered": 1, "gap": 1, "duplicate_or_old": 1, "wrong_data": 1, "epoch": 1, "malformed": 1}
	if fmt.Sprint(r.errs) != fmt.Sprint(wantErrs) {
		t.Errorf("errors %v, want %v", r.errs, wantErrs)
	}

	// From 0:0, a channel without history, offset 1 of any epoch follows.
	r = newReplayCheck("0", 0, 0, want)
	r.next = 1 // its subscribed frame was read
	r.add([]byte(fmt.Sprintf(`{"channel":"chat","offset":1,"epoch":"e1","data":%q}`, want[0])))
	r.add([]byte(fmt.Sprintf(`{"channel":"chat","offset":2,"epoch":"e1","data":%q}`, want[1])))
	r.add([]byte(fmt.Sprintf(`{"channel":"chat","offset":3,"epoch":"e2","data":%q}`, want[2])))
	if r.upTo() != 2 || r.epoch != "e1" || fmt.Sprint(r.errs) != "map[epoch:1]" {
		t.Errorf("from 0:0: up to %d in %s, errors %v; want 2 in e1, one epoch error", r.upTo(), r.epoch, r.errs)
	}

	if _, err := parseEnvelope([]byte(`{"type":"subscribed","channel":"chat"}`)); err == nil {
		t.Error("subscribed frame without a position accepted")
	}
	if u := withQuery("ws://127.0.0.1:1/ws?a=b", "since=e:1"); u != "ws://127.0.0.1:1/ws?a=b&since=e:1" {
		t.Errorf("withQuery: %s", u)
	}
}
