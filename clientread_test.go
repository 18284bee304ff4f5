package redisws

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// utf8Prefix takes text as it streams in: whole runes, an incomplete one
// at the end waiting for its next bytes, or -1 at the first byte that no
// continuation can make valid.
func TestUTF8Prefix(t *testing.T) {
	for _, tc := range []struct {
		in    string
		valid int // from 0
		want  int
	}{
		{"", 0, 0},
		{"ascii", 0, 5},
		{"a€", 0, 4},
		{"a\xe2", 0, 1},         // € begun
		{"a\xe2\x82", 0, 1},     // two of its three bytes
		{"a\xe2\x82\xac", 1, 4}, // completed
		{"\xf0\x9f\x98", 0, 0},  // three of four
		{"\xf0\x9f\x98\x80", 0, 4},
		{"\xff", 0, -1},
		{"a\x80", 0, -1},         // a continuation byte with no start
		{"\xe2\x28", 0, -1},      // a start byte and no continuation
		{"\xed\xa0", 0, -1},      // a surrogate begun
		{"\xf4\x90", 0, -1},      // beyond U+10FFFF begun
		{"\xc0", 0, -1},          // an overlong form begun
		{"\xe2\x82\xff", 0, -1},  // broken in the third byte
		{"ok\xf0\x9f\x98", 2, 2}, // checked from valid on
		{"\xffok", 1, 3},         // what is before valid is not checked again
	} {
		if got := utf8Prefix([]byte(tc.in), tc.valid); got != tc.want {
			t.Errorf("utf8Prefix(%q, %d) = %d, want %d", tc.in, tc.valid, got, tc.want)
		}
	}
}

// Fed any split of any text, byte by byte or whole, utf8Prefix agrees with
// utf8.Valid on the whole, and ends with all of it exactly when it is valid.
func FuzzUTF8Prefix(f *testing.F) {
	for _, s := range []string{"a€b", "\xf0\x9f\x98\x80", "\xe2\x82", "\xed\xa0\x80", strings.Repeat("é", 100)} {
		f.Add(s, uint8(1))
	}
	f.Fuzz(func(t *testing.T, s string, step uint8) {
		p := []byte(s)
		n := max(int(step), 1)
		valid := 0
		for end := n; ; end += n {
			end = min(end, len(p))
			if valid = utf8Prefix(p[:end], valid); valid < 0 {
				if utf8.Valid(p) {
					t.Fatalf("%q refused at byte %d", s, end)
				}
				return
			}
			if end == len(p) {
				break
			}
		}
		if (valid == len(p)) != utf8.Valid(p) {
			t.Fatalf("%q: %d of %d bytes whole runes; utf8.Valid says %v", s, valid, len(p), utf8.Valid(p))
		}
	})
}
