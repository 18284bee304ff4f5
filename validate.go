package redisws

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
)

// Limits of the settings.
const (
	maxSize       = 1 << 30 // of max_message_size, send_queue and send_buffer
	minSendBuffer = 4 << 10 // below this a socket cannot hold one frame of a burst
)

// gap_policy values.
const gapKeep, gapClose = "keep", "close"

// fieldError is a setting that breaks a rule. field is its JSON name, with
// a dot before the name of a nested one (redis.tls); index is the element of
// a list at fault. The Caddyfile uses both to point at the line.
type fieldError struct {
	field string
	index int
	err   error
}

func (e *fieldError) Error() string {
	return strings.ReplaceAll(e.field, ".", ": ") + ": " + e.err.Error()
}

func (e *fieldError) Unwrap() error { return e.err }

func fieldErr(field string, err error) error { return &fieldError{field: field, err: err} }

// Validate implements caddy.Validator: it is the one place of every rule on
// the settings, for JSON and Caddyfile alike (the Caddyfile calls it after
// parsing to name the line at fault). A zero value means the default and is
// always valid, so Validate holds before and after Provision.
func (h *Handler) Validate() error {
	if len(h.Subscribe) == 0 {
		return fieldErr("subscribe", errors.New("no channel: at least one channel is required"))
	}
	for i, ch := range h.Subscribe {
		if err := checkChannelTemplate(ch); err != nil {
			return &fieldError{field: "subscribe", index: i, err: err}
		}
	}
	switch {
	case h.Publish == publishOff:
	case h.Publish != "":
		if err := checkChannelTemplate(h.Publish); err != nil {
			return fieldErr("publish", err)
		}
	case len(h.Subscribe) > 1:
		return fieldErr("publish", errors.New("several channels are subscribed; name the one client frames go to, or off"))
	}
	if h.Allow != nil {
		if err := h.Allow.check(); err != nil {
			return err
		}
	}
	if h.Redis != nil {
		if err := h.Redis.check(); err != nil {
			return err
		}
	}
	for i, o := range h.Origins {
		if err := checkOrigin(o); err != nil {
			return &fieldError{field: "origins", index: i, err: err}
		}
	}
	if err := checkSize("max_message_size", h.MaxMessageSize, 1); err != nil {
		return err
	}
	if err := checkSize("send_queue", int64(h.SendQueue), 1); err != nil {
		return err
	}
	if err := checkSize("send_buffer", int64(h.SendBuffer), minSendBuffer); err != nil {
		return err
	}
	switch {
	case h.PingInterval < 0:
		return fieldErr("ping_interval", fmt.Errorf("%q is not a positive duration (e.g. 30s)", time.Duration(h.PingInterval)))
	case h.MaxConnections < 0:
		return fieldErr("max_connections", fmt.Errorf("%d is negative", h.MaxConnections))
	case h.MaxChannels < 0:
		return fieldErr("max_channels", fmt.Errorf("%d is negative", h.MaxChannels))
	case h.MaxChannels > 0 && len(h.Subscribe) > h.MaxChannels:
		return fieldErr("max_channels", fmt.Errorf("%d is less than the %d channels the route subscribes", h.MaxChannels, len(h.Subscribe)))
	case h.RateLimit < 0 || math.IsNaN(h.RateLimit) || math.IsInf(h.RateLimit, 0):
		return fieldErr("rate_limit", fmt.Errorf("%q is not a positive number of messages per second", fmt.Sprint(h.RateLimit)))
	case h.RateLimitBurst < 0:
		return fieldErr("rate_limit_burst", fmt.Errorf("%d is negative", h.RateLimitBurst))
	case h.SubscribeRate < 0 || math.IsNaN(h.SubscribeRate) || math.IsInf(h.SubscribeRate, 0):
		return fieldErr("subscribe_rate", fmt.Errorf("%q is not a positive number of subscribes per second", fmt.Sprint(h.SubscribeRate)))
	case h.SubscribeRateBurst < 0:
		return fieldErr("subscribe_rate_burst", fmt.Errorf("%d is negative", h.SubscribeRateBurst))
	case h.SubprotocolOptional && len(h.Subprotocols) == 0:
		return fieldErr("subprotocols", errors.New("subprotocol_optional without subprotocols"))
	case h.GapPolicy != "" && h.GapPolicy != gapKeep && h.GapPolicy != gapClose:
		return fieldErr("gap_policy", fmt.Errorf("%q is not keep or close", h.GapPolicy))
	}
	if hc := h.History; hc != nil {
		switch {
		case hc.Size < 1 || hc.Size > maxHistorySize:
			return fieldErr("history.size", fmt.Errorf("%d is not a number of messages from 1 to %d", hc.Size, maxHistorySize))
		case hc.TTL < 0:
			return fieldErr("history.ttl", fmt.Errorf("%q is not a positive duration (e.g. 1h)", time.Duration(hc.TTL)))
		case hc.NewChannels < -1:
			return fieldErr("history.new_channels", fmt.Errorf("%d is not a number of channels per minute, or -1 for no limit", hc.NewChannels))
		}
	}
	if c := h.Compress; c != nil {
		if err := checkSize("compress.min_size", int64(c.MinSize), 1); err != nil {
			return err
		}
	}
	if p := h.Presence; p != nil {
		switch {
		case p.Timeout != 0 && time.Duration(p.Timeout) < minPresenceTimeout:
			return fieldErr("presence.timeout", fmt.Errorf("%s is shorter than %s", time.Duration(p.Timeout), minPresenceTimeout))
		case p.LeaveDelay != nil && *p.LeaveDelay < 0:
			return fieldErr("presence.leave_delay", fmt.Errorf("%s is negative", time.Duration(*p.LeaveDelay)))
		case p.MaxUsers < 0 || p.MaxUsers > maxPresenceUsers:
			return fieldErr("presence.max_users", fmt.Errorf("%d is not a number of users from 1 to %d", p.MaxUsers, maxPresenceUsers))
		case strings.IndexFunc(p.User, unicode.IsControl) >= 0:
			return fieldErr("presence.user", fmt.Errorf("%q holds a control character", p.User))
		}
	}
	return nil
}

// checkSize checks a size in bytes: 0 (the default), or from least to
// maxSize.
func checkSize(field string, n, least int64) error {
	switch {
	case n < 0:
		return fieldErr(field, fmt.Errorf("%d is negative", n))
	case n != 0 && (n < least || n > maxSize):
		lower := formatSize(least)
		if least == 1 {
			lower = "1 byte"
		}
		return fieldErr(field, fmt.Errorf("%q is not a size between %s and %s", formatSize(n), lower, formatSize(maxSize)))
	}
	return nil
}

// formatSize writes a size as the Caddyfile would: 4KiB, 1GiB, 1000.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.name)
		}
	}
	return fmt.Sprint(n)
}

// checkOrigin validates an allowed origin: * or scheme://host[:port].
func checkOrigin(o string) error {
	switch {
	case o == anyOrigin:
		return nil
	case strings.EqualFold(o, "null"):
		return errors.New(`"null" cannot be listed: it is the origin of sandboxed pages and local files, which any site can make; * lets every site in, without credentials`)
	case strings.Contains(o, anyOrigin):
		return fmt.Errorf("%q: an origin cannot hold a wildcard; list each origin, or * alone for every site", o)
	}
	if _, ok := originKey(o); !ok {
		return fmt.Errorf("%q is not an origin; want scheme://host[:port] or *", o)
	}
	return nil
}
