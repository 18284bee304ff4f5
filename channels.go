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
// names that come out.
func (h *Handler) resolve(repl *caddy.Replacer) (channels []string, publish string, err error) {
	for _, tmpl := range h.Subscribe {
		ch, err := expandChannel(repl, tmpl)
		if err != nil {
			return nil, "", err
		}
		if !slices.Contains(channels, ch) {
			channels = append(channels, ch)
		}
	}
	if h.publish != "" {
		if publish, err = expandChannel(repl, h.publish); err != nil {
			return nil, "", err
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
		return "", fmt.Errorf("channel %s: %w", tmpl, err)
	}
	if err := checkChannel(ch); err != nil {
		return "", fmt.Errorf("channel %s: %w", tmpl, err)
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
		return fmt.Errorf("channel name %q holds a control character", ch)
	}
	return nil
}

// checkChannelTemplate validates a configured channel: fully when it has no
// placeholders, otherwise only what the placeholders cannot change.
func checkChannelTemplate(ch string) error {
	if ch == publishOff {
		return errors.New(`"off" cannot be a channel name`)
	}
	if hasPlaceholder(ch) {
		if strings.IndexFunc(ch, unicode.IsControl) >= 0 {
			return fmt.Errorf("channel name %q holds a control character", ch)
		}
		return nil
	}
	return checkChannel(ch)
}
