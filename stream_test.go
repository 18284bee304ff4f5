package redisws

import (
	"net/http"
	"net/url"
	"testing"
)

// How a message is written as an event: EventSource must read back the
// payload exactly, or get it as an event binary.
func TestStreamFrame(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    message
		want string
	}{
		{"live", message{payload: "hi"}, "data: hi\n\n"},
		{"recorded", message{pos: position{"e1", 7}, payload: "hi"}, "id: e1:7\ndata: hi\n\n"},
		{"empty", message{payload: ""}, "data: \n\n"},
		{"lines", message{payload: "a\n b\n"}, "data: a\ndata:  b\ndata: \n\n"},
		{"carriage return", message{payload: "a\rb"}, "event: binary\ndata: YQ1i\n\n"},
		{"not UTF-8", message{pos: position{"e", 1}, payload: "\xff"}, "id: e:1\nevent: binary\ndata: /w==\n\n"},
		{"binary, valid UTF-8", message{payload: "hi", binary: true}, "event: binary\ndata: aGk=\n\n"},
		{"binary, empty", message{pos: position{"e", 2}, payload: "", binary: true}, "id: e:2\nevent: binary\ndata: \n\n"},
	} {
		if got := string(streamFrame(&tc.m).wire); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if f := streamFrame(&message{pos: position{"e", 12}, payload: "x"}); string(f.wire[:f.idLen]) != "id: e:12\n" {
		t.Errorf("idLen %d does not end the id line of %q", f.idLen, f.wire)
	}
}

func TestStreamOpening(t *testing.T) {
	at := &position{"e", 5}
	no, yes := false, true
	for _, tc := range []struct {
		name      string
		at        *position
		recovered *bool
		replaying bool
		want      string
	}{
		{"position unknown", nil, nil, false, ""},
		{"the position", at, nil, false, "id: e:5\n\n"},
		{"a replay follows: its ids say it", at, &yes, true, ""},
		{"resumed with nothing missed", at, &yes, false, "id: e:5\n\n"},
		{"not recovered", at, &no, false, "id: e:5\nevent: reset\ndata: {\"channel\":\"chat\",\"epoch\":\"e\",\"offset\":5}\n\n"},
	} {
		got := ""
		if f := streamOpening("chat", tc.at, tc.recovered, tc.replaying); f != nil {
			got = string(f.wire)
		}
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A stream of several channels writes every channel's position in each id,
// and Last-Event-ID reads it back.
func TestStreamIDOfSeveralChannels(t *testing.T) {
	channels := []string{"room a,b", "news"}
	l := &streamLink{channels: channels, pos: map[string]position{}}
	l.pos["news"] = position{"n", 3}
	got := string(l.appendID(nil))
	if want := "id: news@n:3\n"; got != want {
		t.Fatalf("id %q, want %q", got, want)
	}
	l.pos["room a,b"] = position{"r", 9}
	got = string(l.appendID(nil))
	if want := "id: room%20a%2Cb@r:9,news@n:3\n"; got != want {
		t.Fatalf("id %q, want %q", got, want)
	}
	h := &Handler{History: &History{Size: 10}}
	r := &http.Request{Header: http.Header{"Last-Event-Id": {got[len("id: ") : len(got)-1]}}, URL: &url.URL{RawQuery: "rewind=5"}}
	req, err := h.streamResume(r, channels)
	if err != nil || req.rewind != 0 || req.since["room a,b"] != (position{"r", 9}) || req.since["news"] != (position{"n", 3}) {
		t.Fatalf("streamResume: %+v, %v", req, err)
	}
}

func TestAcceptsEventStream(t *testing.T) {
	for accept, want := range map[string]bool{
		"text/event-stream":                  true,
		"text/html, Text/Event-Stream;q=0.9": true,
		"application/json":                   false,
		"":                                   false,
		"text/event-stream-not, application/xhtml": false,
	} {
		r := &http.Request{Header: http.Header{"Accept": {accept}}}
		if got := accepts(r, "text/event-stream"); got != want {
			t.Errorf("Accept %q: %v, want %v", accept, got, want)
		}
	}
}
