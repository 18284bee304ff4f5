package redisws

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The since of the query and the Last-Event-ID of a stream follow one rule,
// protocol.ParseSince's: an offset of digits only, so a sign ("+5", "-0")
// is refused as any other malformed position, with a reason; a channel is
// one the connection subscribes, and named when it has several.
func TestResumeQuerySyntax(t *testing.T) {
	h := &Handler{Subscribe: []string{"chat", "news"}, History: &History{Size: 100}}
	one, two := []string{"chat"}, []string{"chat", "news"}
	since := func(s string, channels []string) error {
		_, err := h.parseResume(url.Values{"since": {s}}, channels)
		return err
	}
	lastEventID := func(id string, channels []string) error {
		_, err := h.streamResume(&http.Request{URL: &url.URL{}, Header: http.Header{"Last-Event-Id": {id}}}, channels)
		return err
	}
	for _, tc := range []struct {
		what     string
		read     func(string, []string) error
		value    string
		channels []string
		want     string // in the error; "" for accepted
	}{
		{"since", since, "e:5", one, ""},
		{"since", since, "news@e:0", two, ""},
		{"since", since, "e:+5", one, "is not <epoch>:<offset>"},
		{"since", since, "e:-0", one, "is not <epoch>:<offset>"},
		{"since", since, "e:1_0", one, "is not <epoch>:<offset>"},
		{"since", since, "e: 1", one, "is not <epoch>:<offset>"},
		{"since", since, "@e:1", one, "names no channel"},
		{"since", since, "other@e:1", two, "does not subscribe"},
		{"since", since, "e:1", two, "several channels"},
		{"Last-Event-ID", lastEventID, "e:5", one, ""},
		{"Last-Event-ID", lastEventID, "chat@e:1,news@f:2", two, ""},
		{"Last-Event-ID", lastEventID, "e:+5", one, "is not <epoch>:<offset>"},
		{"Last-Event-ID", lastEventID, "chat@e:1,chat@e:2", two, "twice"},
		{"Last-Event-ID", lastEventID, "e:1", two, "several channels"},
		{"Last-Event-ID", lastEventID, "other@e:1", two, "does not subscribe"},
		{"Last-Event-ID", lastEventID, "chat%zz@e:1", two, "does not name a channel"},
	} {
		err := tc.read(tc.value, tc.channels)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s %s on %v: %v, want %q", tc.what, tc.value, tc.channels, err, tc.want)
		}
	}
}
