package redisws

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Allow is what a route lets its clients do with channels they name at run
// time (a command client's subscribe and publish, an event stream's and a
// POST's channel= query), beyond the route's own channels, which they may
// always subscribe to, and its publish channel, which they may always
// publish to. Each is a list of channel patterns: * matches any run of
// characters (also none); a placeholder's value is literal text (a * in it
// matches only a *), and a pattern whose value is empty or unknown in a
// request allows nothing. A pattern that is one {http.auth.user.*}
// placeholder alone reads a list of patterns from it, separated by tabs:
// what redis_ws_token verified in a token ({http.auth.user.subscribe},
// {http.auth.user.publish}). Default: nothing beyond the route's own.
type Allow struct {
	Subscribe []string `json:"subscribe,omitempty"`
	Publish   []string `json:"publish,omitempty"`
}

// authUserPrefix starts the placeholders an authentication provider sets:
// the only ones a pattern may take whole, as a list.
const authUserPrefix = "http.auth.user."

// maxPatterns bounds the patterns one request expands to (a token's lists
// included), so that a decision's work is bounded.
const maxPatterns = 256

// parseCaddyfile reads `allow subscribe|publish <pattern>...`; it may repeat.
// p records each pattern's line, for Validate's errors.
func (a *Allow) parseCaddyfile(d *caddyfile.Dispenser, p *lineMap) error {
	args := d.RemainingArgs()
	if len(args) < 2 {
		return d.Errf("allow: want allow subscribe|publish <pattern>...")
	}
	list := &a.Subscribe
	switch args[0] {
	case "subscribe":
	case "publish":
		list = &a.Publish
	default:
		return d.Errf("allow: %q is not subscribe or publish", args[0])
	}
	for range args[1:] {
		p.Add("allow."+args[0], d.Line())
	}
	*list = append(*list, args[1:]...)
	return nil
}

// check validates the patterns as configured.
func (a *Allow) check() error {
	for field, patterns := range map[string][]string{"allow.subscribe": a.Subscribe, "allow.publish": a.Publish} {
		for i, p := range patterns {
			if err := checkPattern(p); err != nil {
				return &fieldError{field: field, index: i, err: err}
			}
		}
	}
	return nil
}

func checkPattern(p string) error {
	if key, whole := wholePlaceholder(p); whole {
		if !strings.HasPrefix(key, authUserPrefix) {
			return fmt.Errorf("pattern %q: a placeholder alone must be an {%s*} one (a list an authentication provider verified); a client could choose any other", p, authUserPrefix)
		}
		return nil
	}
	if err := checkChannelTemplate(strings.ReplaceAll(p, "*", "x")); err != nil {
		return fmt.Errorf("pattern %q: %w", p, err)
	}
	return nil
}

// wholePlaceholder tells whether p is one placeholder alone, and its key.
func wholePlaceholder(p string) (string, bool) {
	if len(p) < 3 || p[0] != '{' || p[len(p)-1] != '}' || strings.ContainsAny(p[1:len(p)-1], "{}") {
		return "", false
	}
	return p[1 : len(p)-1], true
}

// access is what one request may do with the channels it names: the one
// place that decides, asked by every transport.
type access struct {
	own        []string // the route's channels, resolved
	ownPublish string   // the route's publish channel, resolved; "" none
	subscribe  []pattern
	publish    []pattern
}

// access resolves the route's rules for one request; channels and publish
// are what resolve gave.
func (h *Handler) access(repl *caddy.Replacer, channels []string, publish string) *access {
	a := &access{own: channels, ownPublish: publish}
	if h.Allow != nil {
		a.subscribe = expandPatterns(repl, h.Allow.Subscribe)
		a.publish = expandPatterns(repl, h.Allow.Publish)
	}
	return a
}

// maySubscribe tells whether the request may subscribe to ch (a valid
// channel name).
func (a *access) maySubscribe(ch string) bool {
	return slices.Contains(a.own, ch) || matchAny(a.subscribe, ch)
}

// mayPublish tells whether the request may publish to ch.
func (a *access) mayPublish(ch string) bool {
	return ch == a.ownPublish && ch != "" || matchAny(a.publish, ch)
}

// grants tells whether a token's list of patterns (as a claim holds them:
// * matches any run) matches ch; at most maxPatterns are read.
func grants(patterns []string, ch string) bool {
	for _, p := range patterns[:min(len(patterns), maxPatterns)] {
		if pattern(strings.Split(p, "*")).match(ch) {
			return true
		}
	}
	return false
}

func matchAny(ps []pattern, ch string) bool {
	for _, p := range ps {
		if p.match(ch) {
			return true
		}
	}
	return false
}

// pattern is a channel pattern ready to match: its literal runs, with a *
// between each two.
type pattern []string

var errEmptyPlaceholder = errors.New("empty placeholder")

// literalStar escapes what a placeholder's value holds, so that it is
// matched as text.
var literalStar = strings.NewReplacer(`\`, `\\`, `*`, `\*`)

// expandPatterns expands the placeholders of templates for one request.
func expandPatterns(repl *caddy.Replacer, templates []string) []pattern {
	var out []pattern
	for _, t := range templates {
		if key, whole := wholePlaceholder(t); whole {
			v, _ := repl.GetString(key)
			for p := range strings.SplitSeq(v, "\t") {
				if p != "" && len(out) < maxPatterns {
					out = append(out, strings.Split(p, "*"))
				}
			}
			continue
		}
		s, err := repl.ReplaceFunc(t, func(_ string, v any) (any, error) {
			text := caddy.ToString(v)
			if text == "" {
				return nil, errEmptyPlaceholder
			}
			return literalStar.Replace(text), nil
		})
		if err == nil && len(out) < maxPatterns {
			out = append(out, compileEscaped(s))
		}
	}
	return out
}

// compileEscaped splits s at its unescaped stars; \* and \\ are a literal
// star and backslash.
func compileEscaped(s string) pattern {
	var p pattern
	var run strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			run.WriteByte(s[i])
		case c == '*':
			p = append(p, run.String())
			run.Reset()
		default:
			run.WriteByte(c)
		}
	}
	return append(p, run.String())
}

// match tells whether ch is one of the names p matches. Each literal run is
// found leftmost after the one before, which is exact for patterns whose
// only wildcard is *; the work is at most len(p) × len(ch).
func (p pattern) match(ch string) bool {
	if len(p) == 1 {
		return ch == p[0]
	}
	first, last := p[0], p[len(p)-1]
	if len(ch) < len(first)+len(last) || !strings.HasPrefix(ch, first) || !strings.HasSuffix(ch, last) {
		return false
	}
	rest := ch[len(first) : len(ch)-len(last)]
	for _, run := range p[1 : len(p)-1] {
		i := strings.Index(rest, run)
		if i < 0 {
			return false
		}
		rest = rest[i+len(run):]
	}
	return true
}
