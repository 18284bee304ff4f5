package redisws

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestAllowDecides: the route's rules, with placeholders and a token's
// lists, decide what a request may subscribe and publish to, and what a
// client controls never widens them.
func TestAllowDecides(t *testing.T) {
	h := &Handler{Allow: &Allow{
		Subscribe: []string{"room:*", "user:{http.auth.user.id}", "org:{http.auth.user.org}:*", "{http.auth.user.subscribe}", "dm:*:{http.auth.user.id}"},
		Publish:   []string{"room:*:chat", "{http.auth.user.publish}"},
	}}
	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.id", "al*ce")
	repl.Set("http.auth.user.org", "acme")
	repl.Set("http.auth.user.subscribe", "news:*\tprices")
	repl.Set("http.auth.user.publish", "")
	a := h.access(repl, []string{"lobby"}, "lobby")
	for ch, want := range map[string]bool{
		"lobby":          true, // the route's own
		"room:a":         true,
		"room:":          true, // * matches none too
		"room":           false,
		"xroom:a":        false,
		"user:al*ce":     true,
		"user:alice":     false, // the * of a placeholder's value is text
		"user:al":        false,
		"org:acme:1":     true,
		"org:acme":       false,
		"org:other:1":    false,
		"news:today":     true, // the token's list: * is a wildcard there
		"prices":         true,
		"prices2":        false,
		"dm:bob:al*ce":   true,
		"dm:bob:alxxce":  false,
		"dm:bob:al*ce:x": false,
		"":               false,
		"redis_ws:x":     false,
		"\troom:a":       false,
		"news:*\tprices": true, // matches news:* (a channel name may hold a tab? checkChannel refuses it first)
	} {
		if got := a.maySubscribe(ch); got != want {
			t.Errorf("maySubscribe(%q) = %v, want %v", ch, got, want)
		}
	}
	for ch, want := range map[string]bool{
		"lobby":        true,
		"room:a:chat":  true,
		"room:a":       false,
		"room:a:chat2": false,
		"news:today":   false, // an empty list grants nothing
		"":             false,
	} {
		if got := a.mayPublish(ch); got != want {
			t.Errorf("mayPublish(%q) = %v, want %v", ch, got, want)
		}
	}
}

// TestAllowEmptyPlaceholder: a pattern whose placeholder is unknown or
// empty in a request allows nothing (user:{id} is not user:).
func TestAllowEmptyPlaceholder(t *testing.T) {
	h := &Handler{Allow: &Allow{Subscribe: []string{"user:{http.auth.user.id}", "team:{http.auth.user.team}*", "{http.auth.user.subscribe}"}}}
	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.team", "")
	a := h.access(repl, nil, "")
	for _, ch := range []string{"user:", "team:", "team:x", "user:{http.auth.user.id}"} {
		if a.maySubscribe(ch) {
			t.Errorf("maySubscribe(%q) with no user", ch)
		}
	}
	if (&Handler{}).access(repl, []string{"a"}, "").maySubscribe("b") {
		t.Error("a route without allow lets a client subscribe beyond its own channels")
	}
	if (&Handler{}).access(repl, []string{"a"}, "").mayPublish("") {
		t.Error("a receive-only route lets a client publish to the empty channel")
	}
}

// TestAllowBounded: a token's list is cut at maxPatterns, and a hostile
// pattern costs at most its length times the channel's.
func TestAllowBounded(t *testing.T) {
	h := &Handler{Allow: &Allow{Subscribe: []string{"{http.auth.user.subscribe}"}}}
	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.subscribe", strings.Repeat("x*\t", 10000))
	a := h.access(repl, nil, "")
	if len(a.subscribe) != maxPatterns {
		t.Errorf("%d patterns from a list of 10000, want %d", len(a.subscribe), maxPatterns)
	}
	p := compileEscaped(strings.Repeat("a*", 100) + "b")
	if p.match(strings.Repeat("a", maxChannelLen)) {
		t.Error("matched a channel without b")
	}
	if !p.match(strings.Repeat("a", 100) + "b") {
		t.Error("did not match")
	}
}

// TestCompileEscaped: \* and \\ are literal in a pattern.
func TestCompileEscaped(t *testing.T) {
	for s, want := range map[string]string{
		`a*b`:   "[a b]",
		`a\*b`:  "[a*b]",
		`a\\*b`: `[a\ b]`,
		`*`:     "[ ]",
		`a\`:    `[a\]`,
		`**`:    "[  ]",
	} {
		p := compileEscaped(s)
		if got := "[" + strings.Join(p, " ") + "]"; got != want {
			t.Errorf("compileEscaped(%q) = %s, want %s", s, got, want)
		}
	}
}
