package main

import (
	"math/rand/v2"
	"testing"
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
