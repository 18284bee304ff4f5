package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestCommandExamples: every example of Command's doc parses, commands as
// commands and answers as frames, and marshals back byte for byte.
func TestCommandExamples(t *testing.T) {
	for _, s := range []string{
		`{"id":1,"cmd":"subscribe","channel":"room:a","since":"6755e0a10f3a2:41"}`,
		`{"id":2,"cmd":"publish","channel":"room:a","data":"hi"}`,
		`{"id":3,"cmd":"unsubscribe","channel":"room:a"}`,
		`{"id":4,"cmd":"presence","channel":"room:a"}`,
		`{"id":5,"cmd":"refresh","token":"eyJ…"}`,
		`{"id":6,"cmd":"refresh","channel":"room:a","token":"eyJ…"}`,
	} {
		c, err := ParseCommand([]byte(s))
		if err != nil {
			t.Fatalf("ParseCommand(%s): %v", s, err)
		}
		if b, _ := json.Marshal(c); string(b) != s {
			t.Errorf("ParseCommand(%s) marshals as %s", s, b)
		}
	}
	for _, s := range []string{
		`{"type":"subscribed","id":1,"channel":"room:a","offset":41,"epoch":"6755e0a10f3a2","recovered":true}`,
		`{"type":"published","id":2,"channel":"room:a","offset":42,"epoch":"6755e0a10f3a2"}`,
		`{"type":"unsubscribed","id":3,"channel":"room:a"}`,
		`{"type":"presence","id":4,"channel":"room:a","users":["alice","bob"]}`,
		`{"type":"refreshed","id":5,"exp":1796601600}`,
		`{"type":"refreshed","id":6,"channel":"room:a","exp":1796601600}`,
		`{"type":"unsubscribed","channel":"room:a","code":"token_expired","reason":"the channel's token expired; subscribe again with a fresh one"}`,
		`{"type":"error","id":2,"code":"forbidden","reason":"publishing to this channel is not allowed"}`,
	} {
		f, err := Parse([]byte(s))
		if err != nil {
			t.Fatalf("Parse(%s): %v", s, err)
		}
		if f.String() != s {
			t.Errorf("Parse(%s) marshals as %s", s, f)
		}
	}
}

// TestParseCommandRefuses: hostile and malformed commands are refused, and
// the id comes back whenever the command had a valid one.
func TestParseCommandRefuses(t *testing.T) {
	for bad, id := range map[string]uint64{
		``:                                  0,
		`[]`:                                0,
		`{"cmd":"subscribe","channel":"a"}`: 0,
		`{"id":0,"cmd":"subscribe","channel":"a"}`:                           0,
		`{"id":-1,"cmd":"subscribe","channel":"a"}`:                          0,
		`{"id":1.5,"cmd":"subscribe","channel":"a"}`:                         0,
		`{"id":9007199254740992,"cmd":"subscribe","channel":"a"}`:            0,
		`{"id":"1","cmd":"subscribe","channel":"a"}`:                         0,
		`{"id":7,"cmd":"subscribe","channel":7}`:                             7,
		`{"id":7,"cmd":"subscribe"}`:                                         7,
		`{"id":7,"cmd":"subscribe","channel":"a","since":"x"}`:               7,
		`{"id":7,"cmd":"subscribe","channel":"a","since":"e:+5"}`:            7,
		`{"id":7,"cmd":"subscribe","channel":"a","since":"e:1","rewind":2}`:  7,
		`{"id":7,"cmd":"subscribe","channel":"a","rewind":-1}`:               7,
		`{"id":7,"cmd":"subscribe","channel":"a","data":"x"}`:                7,
		`{"id":7,"cmd":"unsubscribe","channel":"a","rewind":1}`:              7,
		`{"id":7,"cmd":"presence"}`:                                          7,
		`{"id":7,"cmd":"publish","channel":"a"}`:                             7,
		`{"id":7,"cmd":"publish","channel":"a","data":"x","data_base64":""}`: 7,
		`{"id":7,"cmd":"publish","channel":"a","data":"x","token":"t"}`:      7,
		`{"id":7,"cmd":"publish","channel":"a","data_base64":"!!"}`:          7,
		`{"id":7,"cmd":"refresh"}`:                                           7,
		`{"id":7,"cmd":"refresh","token":"t","channel":"a","rewind":1}`:      7,
		`{"id":7,"cmd":"drop"}`:                                              7,
		`{"id":7}`:                                                           7,
	} {
		c, err := ParseCommand([]byte(bad))
		if err == nil {
			t.Errorf("ParseCommand(%s) = %+v, want an error", bad, c)
		} else if c.ID != id {
			t.Errorf("ParseCommand(%s): id %d, want %d", bad, c.ID, id)
		}
	}
	if _, err := ParseCommand([]byte(`{"id":1,"cmd":"nope"}`)); !errors.Is(err, ErrUnknownCmd) {
		t.Errorf("an unknown cmd: %v, want ErrUnknownCmd", err)
	}
	if _, err := ParseCommand([]byte(`{"id":1,"cmd":"publish","channel":"a","data":"` + strings.Repeat("x", 1<<16) + `"}`)); err != nil {
		t.Errorf("a large publish: %v", err)
	}
}

// FuzzParseCommand: whatever ParseCommand accepts, it accepts again once
// marshalled, as the same command.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"cmd":"subscribe","channel":"room:a","since":"6755e0a10f3a2:41"}`,
		`{"id":2,"cmd":"publish","channel":"room:a","data_base64":"/wAB"}`,
		`{"id":5,"cmd":"refresh","token":"t"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCommand(b)
		if err != nil {
			return
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseCommand(out)
		if err != nil {
			t.Fatalf("ParseCommand(%s) = %s, which it refuses: %v", b, out, err)
		}
		if again2, _ := json.Marshal(again); string(again2) != string(out) {
			t.Fatalf("%s became %s", out, again2)
		}
	})
}
