package protocol

import (
	"strings"
	"testing"
)

func TestParsePosition(t *testing.T) {
	for s, want := range map[string]Position{
		"6755e0a10f3a2:42":                      {"6755e0a10f3a2", 42},
		"0:0":                                   {NoHistoryEpoch, 0},
		"a-Z_9:007":                             {"a-Z_9", 7},
		"e:9223372036854775807":                 {"e", 1<<63 - 1},
		strings.Repeat("e", MaxEpochLen) + ":1": {strings.Repeat("e", MaxEpochLen), 1},
	} {
		p, err := ParsePosition(s)
		if err != nil || p != want {
			t.Errorf("ParsePosition(%q) = %v, %v; want %v", s, p, err, want)
		}
		if err == nil && strings.TrimLeft(s, "e") != "" && p.String() != strings.Replace(s, ":007", ":7", 1) {
			t.Errorf("%q written back as %q", s, p)
		}
	}
	for _, bad := range []string{
		"", ":", "e", "e:", ":1", "e:1:2", "e::1", "e:+1", "e:-1", "e:-0", "e: 1", "e:1 ", "e:1_000",
		"e:0x10", "e:1e3", "e:9223372036854775808", "e:99999999999999999999", "e.f:1", "e f:1",
		"é:1", "e\x00:1", "e\n:1", strings.Repeat("e", MaxEpochLen+1) + ":1", "e@f:1",
	} {
		if p, err := ParsePosition(bad); err == nil {
			t.Errorf("ParsePosition(%q) = %v, want an error", bad, p)
		}
	}
}

func TestFollowedBy(t *testing.T) {
	zero := Position{Epoch: NoHistoryEpoch}
	for _, tc := range []struct {
		p, q Position
		want bool
	}{
		{Position{"e", 4}, Position{"e", 5}, true},
		{Position{"e", 4}, Position{"e", 6}, false},
		{Position{"e", 4}, Position{"e", 4}, false},
		{Position{"e", 4}, Position{"f", 5}, false},
		{Position{"e", 0}, Position{"e", 1}, true},
		{Position{"e", 0}, Position{"f", 1}, false},
		{zero, Position{"f", 1}, true},
		{zero, Position{"f", 2}, false},
		{zero, Position{NoHistoryEpoch, 1}, true},
	} {
		if got := tc.p.FollowedBy(tc.q); got != tc.want {
			t.Errorf("%v followed by %v: %v, want %v", tc.p, tc.q, got, tc.want)
		}
	}
}

func TestParseSince(t *testing.T) {
	readmeSays(t, "`?since=<epoch>:<offset>`")
	readmeSays(t, "`?since=<channel>@<epoch>:<offset>`")
	for s, want := range map[string]ChannelPosition{
		"e:3":          {"", Position{"e", 3}},
		"chat@e:3":     {"chat", Position{"e", 3}},
		"a@b@e:3":      {"a@b", Position{"e", 3}},
		"room:a@0:0":   {"room:a", Position{NoHistoryEpoch, 0}},
		"a b,c%2F@e:1": {"a b,c%2F", Position{"e", 1}},
		"é\x00@e:9":    {"é\x00", Position{"e", 9}},
	} {
		cp, err := ParseSince(s)
		if err != nil || cp != want {
			t.Errorf("ParseSince(%q) = %+v, %v; want %+v", s, cp, err, want)
		}
		if cp.String() != s {
			t.Errorf("%+v written as %q, want %q", cp, cp, s)
		}
	}
	for _, bad := range []string{"", "@e:1", "chat@", "chat@e", "chat@e:-1", "chat", "e:1@chat"} {
		if cp, err := ParseSince(bad); err == nil {
			t.Errorf("ParseSince(%q) = %+v, want an error", bad, cp)
		}
	}
}
