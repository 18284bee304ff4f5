package redisws

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
)

const (
	// maxChannelLen is the longest channel name accepted, in bytes.
	maxChannelLen = 256
	// publishOff as the publish channel makes clients receive-only.
	publishOff = "off"
	// reservedPrefix starts the module's own keys (a channel's history and
	// presence) and channels (presence events: redis_ws:{<channel>}:presence).
	// A client's channel there could read or forge them.
	reservedPrefix = "redis_ws:"
)

func hasPlaceholder(s string) bool { return strings.Contains(s, "{") }

// publishChannel is the configured channel client frames go to, with its
// placeholders; "" when clients are receive-only.
func (h *Handler) publishChannel() string {
	switch {
	case h.Publish == publishOff:
		return ""
	case h.Publish != "":
		return h.Publish
	case len(h.Subscribe) == 1:
		return h.Subscribe[0]
	}
	return "" // Validate refuses a handler that leaves it open
}

// resolve expands the channel placeholders for one request and checks the
// names that come out. An error names the setting at fault, never its
// value, which would show a client the config.
func (h *Handler) resolve(repl *caddy.Replacer) (channels []string, publish string, err error) {
	for _, tmpl := range h.Subscribe {
		ch, err := expandChannel(repl, tmpl)
		if err != nil {
			return nil, "", fmt.Errorf("subscribe: %w", err)
		}
		if !slices.Contains(channels, ch) {
			channels = append(channels, ch)
		}
	}
	if h.publish != "" {
		if publish, err = expandChannel(repl, h.publish); err != nil {
			return nil, "", fmt.Errorf("publish: %w", err)
		}
	}
	return channels, publish, nil
}

func expandChannel(repl *caddy.Replacer, tmpl string) (string, error) {
	if !hasPlaceholder(tmpl) {
		return tmpl, nil // checked by Validate
	}
	if repl == nil {
		repl = caddy.NewReplacer()
	}
	ch, err := repl.ReplaceOrErr(tmpl, true, true)
	if err != nil {
		// Caddy's error names the placeholder: say what is wrong without it.
		if _, err := repl.ReplaceOrErr(tmpl, false, true); err != nil {
			return "", errors.New("the channel name has a placeholder this request does not know")
		}
		return "", errors.New("a placeholder of the channel name is empty in this request")
	}
	if err := checkChannel(ch); err != nil {
		return "", err
	}
	return ch, nil
}

// checkChannel validates a channel name as it will be sent to Redis.
func checkChannel(ch string) error {
	switch {
	case ch == "":
		return errors.New("channel name is empty")
	case len(ch) > maxChannelLen:
		return fmt.Errorf("channel name is %d bytes long; the limit is %d", len(ch), maxChannelLen)
	case !utf8.ValidString(ch):
		return errors.New("channel name is not valid UTF-8")
	case strings.IndexFunc(ch, unicode.IsControl) >= 0:
		return errors.New("channel name holds a control character")
	case strings.HasPrefix(ch, reservedPrefix):
		return errReservedChannel
	}
	return nil
}

var errReservedChannel = fmt.Errorf("channel name starts with %q, which is reserved for the module's own keys and channels", reservedPrefix)

// checkChannelTemplate validates a configured channel: fully when it has no
// placeholders, otherwise only what the placeholders cannot change.
func checkChannelTemplate(ch string) error {
	switch {
	case ch == publishOff:
		return errors.New(`"off" cannot be a channel name`)
	case !hasPlaceholder(ch):
		return checkChannel(ch)
	case strings.IndexFunc(ch, unicode.IsControl) >= 0:
		return fmt.Errorf("channel name %q holds a control character", ch)
	case strings.HasPrefix(ch, reservedPrefix):
		return errReservedChannel
	}
	return nil
}
