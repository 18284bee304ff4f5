package token

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestSources(t *testing.T) {
	req := func(edit func(r *http.Request)) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/ws?access_token=Q&t=T", nil)
		edit(r)
		return r
	}
	all := func(r *http.Request) {
		r.Header.Set("Authorization", "bearer H")
		r.Header.Add("Sec-WebSocket-Protocol", "redis_ws.v1")
		r.Header.Add("Sec-WebSocket-Protocol", "chat, redis_ws.token.S")
		r.AddCookie(&http.Cookie{Name: "redis_ws_token", Value: "C"})
	}
	for _, c := range []struct {
		name        string
		s           Sources
		r           *http.Request
		raw, source string
	}{
		{"header first", Sources{}, req(all), "H", SourceHeader},
		{"subprotocol in a later line", Sources{Order: []string{SourceSubprotocol}}, req(all), "S", SourceSubprotocol},
		{"cookie", Sources{Order: []string{SourceCookie}}, req(all), "C", SourceCookie},
		{"query", Sources{Order: []string{SourceQuery}}, req(all), "Q", SourceQuery},
		{"query renamed", Sources{Order: []string{SourceQuery}, Query: "t"}, req(all), "T", SourceQuery},
		{"cookie renamed, absent", Sources{Order: []string{SourceCookie}, Cookie: "other"}, req(all), "", ""},
		{"order given", Sources{Order: []string{SourceQuery, SourceHeader}}, req(all), "Q", SourceQuery},
		{"basic is no bearer", Sources{Order: []string{SourceHeader}}, req(func(r *http.Request) { r.Header.Set("Authorization", "Basic eDp5") }), "", ""},
		{"next source when one is empty", Sources{}, req(func(r *http.Request) { r.Header.Set("Sec-WebSocket-Protocol", "redis_ws.token.S") }), "S", SourceSubprotocol},
		{"header off", Sources{Order: []string{SourceCookie}}, req(func(r *http.Request) { r.Header.Set("Authorization", "Bearer H") }), "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw, source := c.s.Find(c.r)
			if raw != c.raw || source != c.source {
				t.Errorf("Find = %q from %q; want %q from %q", raw, source, c.raw, c.source)
			}
		})
	}
}
