package protocol

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestEventID(t *testing.T) {
	readmeSays(t, "id: 6755e0a10f3a2:42")
	readmeSays(t, "`<channel>@<epoch>:<offset>` separated by commas (channel names path-escaped)")
	for _, tc := range []struct {
		id string
		ps []ChannelPosition
	}{
		{"6755e0a10f3a2:42", []ChannelPosition{{"", Position{"6755e0a10f3a2", 42}}}},
		{"0:0", []ChannelPosition{{"", Position{NoHistoryEpoch, 0}}}},
		{"a@e1:3,b@0:0", []ChannelPosition{{"a", Position{"e1", 3}}, {"b", Position{NoHistoryEpoch, 0}}}},
		{"chat@e:1", []ChannelPosition{{"chat", Position{"e", 1}}}},
		{"room:a@e:1,room:%7Ba%7Db@e:2", []ChannelPosition{{"room:a", Position{"e", 1}}, {"room:{a}b", Position{"e", 2}}}},
		{"a%2Cb@e:1,a@b@e:2,%25@e:3", []ChannelPosition{{"a,b", Position{"e", 1}}, {"a@b", Position{"e", 2}}, {"%", Position{"e", 3}}}},
		{"l%0Aine%0D%20%C3%A9%2F@e:1,x@e:2", []ChannelPosition{{"l\nine\r é/", Position{"e", 1}}, {"x", Position{"e", 2}}}},
	} {
		got, err := ParseEventID(tc.id)
		if err != nil || !reflect.DeepEqual(got, tc.ps) {
			t.Errorf("ParseEventID(%q) = %+v, %v; want %+v", tc.id, got, err, tc.ps)
		}
		if s := FormatEventID(tc.ps...); s != tc.id {
			t.Errorf("FormatEventID(%+v) = %q, want %q", tc.ps, s, tc.id)
		}
		if b := AppendEventID([]byte("id: "), tc.ps...); string(b) != "id: "+tc.id {
			t.Errorf("AppendEventID: %q", b)
		}
	}
	// Escapes a server does not write are read all the same.
	if got, err := ParseEventID("%61@e:1,%62%40@e:2"); err != nil || FormatEventID(got...) != "a@e:1,b@@e:2" {
		t.Errorf("escaped names: %+v, %v", got, err)
	}
}

// TestEventIDRefuses: a Last-Event-ID that the server did not send.
func TestEventIDRefuses(t *testing.T) {
	for _, bad := range []string{
		"", ",", "e:1,", ",e:1", "e:1,e:2", "e:1,a@e:2", "a@e:1,e:2", "a@e:1,a@e:2", "a@e:1,%61@e:2",
		"@e:1", "a@e:1,@e:2", "%zz@e:1", "%@e:1", "a@e", "a@e:x", "a@e:-1", "a@:1",
		"no offset", "a@e:9223372036854775808", "a@" + strings.Repeat("e", MaxEpochLen+1) + ":1",
	} {
		if got, err := ParseEventID(bad); err == nil {
			t.Errorf("ParseEventID(%q) = %+v, want an error", bad, got)
		}
	}
}

// FuzzEventID: what ParseEventID accepts, written back, is one line that
// reads as the same positions.
func FuzzEventID(f *testing.F) {
	for _, s := range []string{"6755e0a10f3a2:42", "0:0", "a@e1:3,b@0:0", "a%2Cb@e:1,a@b@e:2", "%0A@e:1,x@e:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		ps, err := ParseEventID(id)
		if err != nil {
			return
		}
		s := FormatEventID(ps...)
		if strings.ContainsAny(s, "\r\n\x00") {
			t.Fatalf("%q written as %q: not one line", id, s)
		}
		again, err := ParseEventID(s)
		if err != nil || !reflect.DeepEqual(again, ps) {
			t.Fatalf("%q: written as %q, read as %+v, %v; want %+v", id, s, again, err, ps)
		}
	})
}

func TestReset(t *testing.T) {
	readmeSays(t, `data: {"channel":"chat","epoch":"…","offset":43}`)
	r := Reset{Channel: "chat", Epoch: "6755e0a10f3a2", Offset: 43}
	b, err := json.Marshal(r)
	if want := `{"channel":"chat","epoch":"6755e0a10f3a2","offset":43}`; err != nil || string(b) != want {
		t.Fatalf("reset data %s, want %s", b, want)
	}
	var back Reset
	if err := json.Unmarshal(b, &back); err != nil || back != r || back.Position() != (Position{"6755e0a10f3a2", 43}) {
		t.Errorf("read back as %+v, %v", back, err)
	}
	b, _ = json.Marshal(Reset{Channel: "chat", Epoch: NoHistoryEpoch})
	if want := `{"channel":"chat","epoch":"0","offset":0}`; string(b) != want {
		t.Errorf("reset at 0:0: %s, want %s", b, want)
	}
	readmeSays(t, "event: "+EventBinary)
	readmeSays(t, "event: "+EventReset)
}
