package redisws

import (
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// utf8Prefix takes the bytes of text read so far: whole characters, an
// incomplete one at the end waiting for its next bytes, or -1 at a byte
// that no continuation can make valid.
func TestUTF8Prefix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 0},
		{"ascii", 5},
		{"a€", 4},
		{"a\xe2", 1},     // € begun
		{"a\xe2\x82", 1}, // two of its three bytes
		{"\xf0\x9f\x98", 0},
		{"\xf0\x9f\x98\x80", 4},
		{"\xff", -1},
		{"a\x80", -1},          // a continuation byte with no start
		{"\xe2\x28", -1},       // a start byte and no continuation
		{"\xed\xa0", -1},       // a surrogate begun
		{"\xf4\x90", -1},       // beyond U+10FFFF begun
		{"\xc0", -1},           // an overlong form begun
		{"\xe2\x82\xff", -1},   // broken in the third byte
		{"\xffok\xe2\x82", -1}, // broken before an incomplete end
	} {
		if got := utf8Prefix([]byte(tc.in)); got != tc.want {
			t.Errorf("utf8Prefix(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// chunkReader returns s in reads of n bytes.
type chunkReader struct {
	s string
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.s)
	c.s = c.s[k:]
	return k, nil
}

// utf8Checker, reading text in reads of any size, refuses it exactly when
// utf8.Valid does, at the read of the byte that breaks it (or at the end,
// when the text stops inside a character).
func FuzzUTF8Checker(f *testing.F) {
	for _, s := range []string{"a€b", "\xf0\x9f\x98\x80", "\xe2\x82", "\xed\xa0\x80", "ok\xff", strings.Repeat("é", 100)} {
		f.Add(s, uint8(1))
		f.Add(s, uint8(2))
	}
	f.Fuzz(func(t *testing.T, s string, step uint8) {
		n := max(int(step), 1)
		got, err := io.ReadAll(&utf8Checker{r: &chunkReader{s, n}})
		if valid := utf8.ValidString(s); valid != (err == nil) || err != nil && !errors.Is(err, errInvalidUTF8) {
			t.Fatalf("%q in reads of %d: %v; utf8.Valid says %v", s, n, err, valid)
		}
		if err == nil && string(got) != s {
			t.Fatalf("%q read as %q", s, got)
		}
		// Fail fast: nothing is read past the read that holds the last
		// byte of the longest valid prefix's next character.
		if err != nil {
			bad := len(s)
			for i := 1; i <= len(s); i++ {
				if utf8Prefix([]byte(s[:i])) < 0 {
					bad = i
					break
				}
			}
			if limit := (bad + n - 1) / n * n; len(got) > limit {
				t.Fatalf("%q in reads of %d: %d bytes read, broken at byte %d", s, n, len(got), bad)
			}
		}
	})
}
