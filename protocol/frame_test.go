package protocol

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
)

var readme = sync.OnceValues(func() ([]byte, error) { return os.ReadFile("../README.md") })

// readmeSays fails the test unless README.md holds fragment as it is: the
// bytes the tests expect are the ones the README shows.
func readmeSays(t *testing.T, fragment string) {
	t.Helper()
	b, err := readme()
	if err != nil {
		t.Fatal(err)
	}
	// Compared with every run of white space as one space: a rewrapped
	// paragraph says the same.
	if !strings.Contains(oneSpaced(string(b)), oneSpaced(fragment)) {
		t.Errorf("README.md does not show %s", fragment)
	}
}

func oneSpaced(s string) string { return strings.Join(strings.Fields(s), " ") }

// TestFrameBytes: each kind of frame, marshalled, is byte for byte what the
// README shows and the server writes; Parse gives the same frame back.
func TestFrameBytes(t *testing.T) {
	at := Position{Epoch: "6755e0a10f3a2", Offset: 42}
	for _, tc := range []struct {
		name   string
		frame  Frame
		want   string
		readme string // the part of want the README shows; "" for all of it
	}{
		{"recorded text", NewMessage("chat", "hi", false, at),
			`{"channel":"chat","offset":42,"epoch":"6755e0a10f3a2","data":"hi"}`, ""},
		{"live text", NewMessage("chat", "hi", false, Position{}),
			`{"channel":"chat","data":"hi"}`, "`offset` and `epoch` only for recorded messages"},
		{"empty text", NewMessage("chat", "", false, Position{}),
			`{"channel":"chat","data":""}`, "-"},
		{"binary", NewMessage("chat", "\xff\x00\x01", true, at),
			`{"channel":"chat","offset":42,"epoch":"6755e0a10f3a2","data_base64":"/wAB"}`, `"data_base64"`},
		{"empty binary", NewMessage("chat", "", true, Position{}),
			`{"channel":"chat","data_base64":""}`, `"data_base64":""`},
		{"text escaped as encoding/json does", NewMessage("c<h>", "<a&b>\u2028\"\\\n", false, Position{}),
			`{"channel":"c\u003ch\u003e","data":"\u003ca\u0026b\u003e\u2028\"\\\n"}`, "-"},
		{"subscribed", NewSubscribed("chat", Position{Epoch: "6755e0a10f3a2", Offset: 41}, nil),
			`{"type":"subscribed","channel":"chat","offset":41,"epoch":"6755e0a10f3a2"}`, ""},
		{"subscribed without history yet", NewSubscribed("chat", Position{Epoch: NoHistoryEpoch}, nil),
			`{"type":"subscribed","channel":"chat","offset":0,"epoch":"0"}`, `"offset":0,"epoch":"0"`},
		{"subscribed, resumed", NewSubscribed("chat", Position{Epoch: "e", Offset: 7}, new(true)),
			`{"type":"subscribed","channel":"chat","offset":7,"epoch":"e","recovered":true}`, `"recovered":true`},
		{"subscribed, not recovered", NewSubscribed("chat", Position{Epoch: "e", Offset: 7}, new(false)),
			`{"type":"subscribed","channel":"chat","offset":7,"epoch":"e","recovered":false}`, `"recovered":false`},
		{"subscribed without history", NewSubscribed("chat", Position{}, nil),
			`{"type":"subscribed","channel":"chat"}`, ""},
		{"join", NewJoin("room:a", "alice"),
			`{"type":"join","channel":"room:a","user":"alice"}`, ""},
		{"leave", NewLeave("room:a", "alice"),
			`{"type":"leave","channel":"room:a","user":"alice"}`, `{"type":"leave",`},
		{"presence reset", NewPresenceReset("room:a"),
			`{"type":"presence_reset","channel":"room:a"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.frame)
			if err != nil || string(b) != tc.want {
				t.Fatalf("marshalled %s (%v), want %s", b, err, tc.want)
			}
			if tc.frame.String() != tc.want {
				t.Errorf("String %s, want %s", tc.frame, tc.want)
			}
			switch tc.readme {
			case "":
				readmeSays(t, tc.want)
			case "-": // not in the README
			default:
				readmeSays(t, tc.readme)
			}
			got, err := Parse(b)
			if err != nil || !reflect.DeepEqual(got, tc.frame) {
				t.Fatalf("Parse(%s) = %s, %v; want it back", b, got, err)
			}
		})
	}
}

// TestFrameReadme: the README's examples parse, and read as it says.
func TestFrameReadme(t *testing.T) {
	const msg = `{"channel":"chat","offset":42,"epoch":"6755e0a10f3a2","data":"hi"}`
	readmeSays(t, msg)
	f, err := Parse([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := f.Position(); !ok || p != (Position{"6755e0a10f3a2", 42}) || string(f.Payload()) != "hi" || f.Binary() {
		t.Errorf("%s: position %v %v, payload %q, binary %v", msg, p, ok, f.Payload(), f.Binary())
	}
	f, err = Parse([]byte(`{"channel":"chat","data_base64":""}`))
	if err != nil || !f.Binary() || f.Payload() == nil || len(f.Payload()) != 0 {
		t.Errorf("empty binary: %s, %v: payload %#v", f, err, f.Payload())
	}
	if _, ok := f.Position(); ok {
		t.Error("a live message has a position")
	}
	f, _ = Parse([]byte(`{"type":"subscribed","channel":"chat"}`))
	if _, ok := f.Position(); ok || f.Payload() != nil {
		t.Errorf("subscribed frame without history: %s", f)
	}
}

// TestParseRefuses: frames the protocol does not have, each for its reason;
// members a later version may add are ignored.
func TestParseRefuses(t *testing.T) {
	for _, bad := range []string{
		``,
		`null`,
		`[]`,
		`"chat"`,
		`{"channel":"chat","data":"hi"} {}`,
		`{"channel":"chat","data":"hi"`,
		`{"data":"hi"}`,
		`{"channel":"","data":"hi"}`,
		`{"channel":7,"data":"hi"}`,
		`{"channel":"chat"}`,
		`{"channel":"chat","data":"hi","data_base64":""}`,
		`{"channel":"chat","data":null}`,
		`{"channel":"chat","data_base64":"not base64!"}`,
		`{"channel":"chat","offset":1,"data":"hi"}`,
		`{"channel":"chat","epoch":"e","data":"hi"}`,
		`{"channel":"chat","offset":0,"epoch":"e","data":"hi"}`,
		`{"channel":"chat","offset":-1,"epoch":"e","data":"hi"}`,
		`{"channel":"chat","offset":1.5,"epoch":"e","data":"hi"}`,
		`{"channel":"chat","offset":9223372036854775808,"epoch":"e","data":"hi"}`,
		`{"channel":"chat","offset":"1","epoch":"e","data":"hi"}`,
		`{"channel":"chat","offset":1,"epoch":"e:1","data":"hi"}`,
		`{"channel":"chat","offset":1,"epoch":"` + strings.Repeat("e", MaxEpochLen+1) + `","data":"hi"}`,
		`{"channel":"chat","data":"hi","recovered":true}`,
		`{"channel":"chat","data":"hi","user":"alice"}`,
		`{"type":"subscribed","channel":"chat","offset":-1,"epoch":"e"}`,
		`{"type":"subscribed","channel":"chat","recovered":true}`,
		`{"type":"subscribed","channel":"chat","data":"hi"}`,
		`{"type":"subscribed","channel":"chat","user":"alice"}`,
		`{"type":"join","channel":"room:a"}`,
		`{"type":"join","channel":"room:a","user":""}`,
		`{"type":"leave","channel":"room:a","user":"alice","data":"x"}`,
		`{"type":"join","channel":"room:a","user":"alice","offset":1,"epoch":"e"}`,
		`{"type":"presence_reset","channel":"room:a","user":"alice"}`,
		`{"type":"presence_reset"}`,
		`{"type":"unsubscribed","channel":"chat"}`,
		`{"type":"unsubscribed","channel":"chat","code":"token_expired"}`,
		`{"type":"unsubscribed","id":3,"channel":"chat","code":"token_expired","reason":"x"}`,
		`{"type":"","channel":"chat"}`,
		`{"channel":"chat","data":"hi","id":7}`,
		`{"type":"published","channel":"chat"}`,
		`{"type":"published","id":1,"channel":"chat","data":"hi"}`,
		`{"type":"presence","id":1}`,
		`{"type":"join","channel":"room:a","user":"alice","users":["bob"]}`,
		`{"type":"refreshed","id":1,"channel":"chat","code":"x"}`,
		`{"type":"error","id":1,"code":"forbidden"}`,
		`{"type":"error","id":1,"reason":"no"}`,
		`{"type":"error","id":9007199254740992,"code":"forbidden","reason":"no"}`,
		`{"type":"subscribed","channel":"chat","exp":5}`,
	} {
		if f, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%s) = %s, want an error", bad, f)
		}
	}
	f, err := Parse([]byte(`{"channel":"chat","data":"hi","later":{"x":[1]}}`))
	if err != nil || string(f.Payload()) != "hi" {
		t.Errorf("unknown members: %s, %v", f, err)
	}
}

// FuzzParse: whatever Parse accepts, it accepts again once marshalled, as
// the same frame.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"channel":"chat","offset":42,"epoch":"6755e0a10f3a2","data":"hi"}`,
		`{"channel":"chat","data_base64":""}`,
		`{"type":"subscribed","channel":"chat","offset":0,"epoch":"0","recovered":true}`,
		`{"type":"join","channel":"room:a","user":"alice"}`,
		`{"type":"presence_reset","channel":"room:a"}`,
		`{"type":"subscribed","id":1,"channel":"room:a","offset":41,"epoch":"6755e0a10f3a2","recovered":true}`,
		`{"type":"published","id":2,"channel":"room:a","offset":42,"epoch":"6755e0a10f3a2"}`,
		`{"type":"unsubscribed","id":3,"channel":"room:a"}`,
		`{"type":"presence","id":4,"channel":"room:a","users":["alice","bob"]}`,
		`{"type":"refreshed","id":5,"exp":1796601600}`,
		`{"type":"refreshed","id":6,"channel":"room:a","exp":1796601600}`,
		`{"type":"unsubscribed","channel":"room:a","code":"token_expired","reason":"the channel's token expired; subscribe again with a fresh one"}`,
		`{"type":"error","code":"bad_request","reason":"not a command"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Parse(b)
		if err != nil {
			return
		}
		again, err := Parse([]byte(fr.String()))
		if err != nil || !reflect.DeepEqual(again, fr) {
			t.Fatalf("%s: marshalled %s parses as %s, %v", b, fr, again, err)
		}
	})
}
