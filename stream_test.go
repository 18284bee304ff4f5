package redisws

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/frame"
)

// How a message is written as an event: EventSource must read back the
// payload exactly, or get it as an event binary.
func TestStreamFrame(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    frame.Message
		want string
	}{
		{"live", frame.Message{Payload: "hi"}, "data: hi\n\n"},
		{"recorded", frame.Message{Pos: frame.Position{Epoch: "e1", Offset: 7}, Payload: "hi"}, "id: e1:7\ndata: hi\n\n"},
		{"empty", frame.Message{Payload: ""}, "data: \n\n"},
		{"lines", frame.Message{Payload: "a\n b\n"}, "data: a\ndata:  b\ndata: \n\n"},
		{"carriage return", frame.Message{Payload: "a\rb"}, "event: binary\ndata: YQ1i\n\n"},
		{"not UTF-8", frame.Message{Pos: frame.Position{Epoch: "e", Offset: 1}, Payload: "\xff"}, "id: e:1\nevent: binary\ndata: /w==\n\n"},
		{"binary, valid UTF-8", frame.Message{Payload: "hi", Binary: true}, "event: binary\ndata: aGk=\n\n"},
		{"binary, empty", frame.Message{Pos: frame.Position{Epoch: "e", Offset: 2}, Payload: "", Binary: true}, "id: e:2\nevent: binary\ndata: \n\n"},
	} {
		if got := string(frame.StreamFrame(&tc.m).Wire); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if f := frame.StreamFrame(&frame.Message{Pos: frame.Position{Epoch: "e", Offset: 12}, Payload: "x"}); string(f.Wire[:f.IdLen]) != "id: e:12\n" {
		t.Errorf("idLen %d does not end the id line of %q", f.IdLen, f.Wire)
	}
}

func TestStreamOpening(t *testing.T) {
	at := &frame.Position{Epoch: "e", Offset: 5}
	no, yes := false, true
	for _, tc := range []struct {
		name      string
		at        *frame.Position
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
		if f := frame.StreamOpening("chat", tc.at, tc.recovered, tc.replaying); f != nil {
			got = string(f.Wire)
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
	l := &streamLink{channels: channels, pos: map[string]frame.Position{}}
	l.pos["news"] = frame.Position{Epoch: "n", Offset: 3}
	got := string(l.appendID(nil))
	if want := "id: news@n:3\n"; got != want {
		t.Fatalf("id %q, want %q", got, want)
	}
	l.pos["room a,b"] = frame.Position{Epoch: "r", Offset: 9}
	got = string(l.appendID(nil))
	if want := "id: room%20a%2Cb@r:9,news@n:3\n"; got != want {
		t.Fatalf("id %q, want %q", got, want)
	}
	h := &Handler{History: &History{Size: 10}}
	r := &http.Request{Header: http.Header{"Last-Event-Id": {got[len("id: ") : len(got)-1]}}, URL: &url.URL{RawQuery: "rewind=5"}}
	req, err := h.streamResume(r, channels)
	if err != nil || req.rewind != 0 || req.since["room a,b"] != (frame.Position{Epoch: "r", Offset: 9}) || req.since["news"] != (frame.Position{Epoch: "n", Offset: 3}) {
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
