package chatjson

import (
	"encoding/json"
	"testing"
)

func TestMessage(t *testing.T) {
	for _, n := range []int{0, MinSize, 100, 256, 1024, 4096, 100 << 10} {
		for seed := range 3 {
			m := Message(n, seed)
			if want := max(n, MinSize); len(m) != want {
				t.Errorf("Message(%d, %d) is %d bytes, want %d", n, seed, len(m), want)
			}
			if !json.Valid([]byte(m)) {
				t.Errorf("Message(%d, %d) is not JSON: %s", n, seed, m)
			}
			if seed > 0 && n > 256 && m == Message(n, seed-1) {
				t.Errorf("Message(%d, %d) is the same as with seed %d", n, seed, seed-1)
			}
		}
	}
}
