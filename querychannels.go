package redisws

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/caddyserver/caddy/v2"
)

// channelParam is the query parameter that names a channel: repeated, one
// channel each, for an event stream (?channel=a&channel=b, as Mercure's
// ?topic=), once for a POST. One name for both, singular because each
// value is one channel, and a name EventSource and curl build with plain
// URLSearchParams.append or -d.
const channelParam = "channel"

// refusal is an error answered with its own status.
type refusal struct {
	status int
	reason string
}

func (r *refusal) Error() string { return r.reason }

func badRequest(format string, a ...any) *refusal {
	return &refusal{http.StatusBadRequest, fmt.Sprintf(format, a...)}
}

// parseQuery reads the request's query strictly: a bad %-escape, a ; or
// more than 10,000 parameters (net/url's limit, beyond which the whole
// query would silently be dropped) is refused rather than read as nothing.
func parseQuery(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("the query is malformed (a bad %%-escape, a ';' or more than 10,000 parameters)")
	}
	return q, nil
}

// queryChannels adds to own, the route's channels, those the query of an
// event stream or a presence GET names: duplicates folded, at most max_channels in all, each a valid name
// the route's allow subscribe permits. The count is checked before any
// name, so a flood of them costs no pattern matching.
func (h *Handler) queryChannels(q url.Values, repl *caddy.Replacer, own []string) ([]string, error) {
	named := q[channelParam]
	if len(named) == 0 {
		return own, nil
	}
	channels := slices.Clone(own)
	for _, ch := range named {
		if !slices.Contains(channels, ch) {
			if len(channels) >= h.MaxChannels {
				return nil, badRequest("the query names more channels than max_channels (%d) allows, the route's own included", h.MaxChannels)
			}
			channels = append(channels, ch)
		}
	}
	a := h.access(repl, own, "")
	for _, ch := range channels[len(own):] {
		if err := checkChannel(ch); err != nil {
			return nil, badRequest("a channel the query names: %v", err)
		}
		if !a.maySubscribe(ch) {
			return nil, &refusal{http.StatusForbidden, fmt.Sprintf("channel %q: this route does not allow subscribing to it (allow subscribe)", ch)}
		}
	}
	return channels, nil
}

// postChannel is the channel a POST publishes to: the one its query names,
// when the route's allow publish permits it, else the route's publish
// channel.
func (h *Handler) postChannel(q url.Values, repl *caddy.Replacer, channels []string, publish string) (string, error) {
	named := q[channelParam]
	switch {
	case len(named) == 0:
		return publish, nil
	case len(named) > 1:
		return "", badRequest("a POST names at most one channel")
	}
	ch := named[0]
	if err := checkChannel(ch); err != nil {
		return "", badRequest("the channel the query names: %v", err)
	}
	if !h.access(repl, channels, publish).mayPublish(ch) {
		return "", &refusal{http.StatusForbidden, fmt.Sprintf("channel %q: this route does not allow publishing to it (allow publish)", ch)}
	}
	return ch, nil
}
