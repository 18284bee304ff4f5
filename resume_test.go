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
	for _, tc := range []struct {
		since    string
		channels []string
		want     string // in the error; "" for accepted
	}{
		{"e:5", one, ""},
		{"news@e:0", two, ""},
		{"e:+5", one, "is not <epoch>:<offset>"},
		{"e:-0", one, "is not <epoch>:<offset>"},
		{"e:1_0", one, "is not <epoch>:<offset>"},
		{"e: 1", one, "is not <epoch>:<offset>"},
		{"@e:1", one, "names no channel"},
		{"other@e:1", two, "does not subscribe"},
		{"e:1", two, "several channels"},
	} {
		_, err := h.parseResume(url.Values{"since": {tc.since}}, tc.channels)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("since=%s on %v: %v, want %q", tc.since, tc.channels, err, tc.want)
		}
	}
	for _, tc := range []struct {
		id       string
		channels []string
		want     string
	}{
		{"e:5", one, ""},
		{"chat@e:1,news@f:2", two, ""},
		{"e:+5", one, "is not <epoch>:<offset>"},
		{"chat@e:1,chat@e:2", two, "twice"},
		{"e:1", two, "several channels"},
		{"other@e:1", two, "does not subscribe"},
		{"chat%zz@e:1", two, "does not name a channel"},
	} {
		r := &http.Request{URL: &url.URL{}, Header: http.Header{"Last-Event-Id": {tc.id}}}
		_, err := h.streamResume(r, tc.channels)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Last-Event-ID %s on %v: %v, want %q", tc.id, tc.channels, err, tc.want)
		}
	}
}
