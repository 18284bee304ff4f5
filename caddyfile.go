package redisws

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	redis_ws [<matcher>] [<channel>] {
//		subscribe <channel...>
//		publish <channel>|off
//		allow subscribe|publish <pattern...>
//		redis <url> | { addrs …, master_name …, cluster, … } (see parseRedis)
//		origins <origin...>
//		max_message_size <size>
//		send_queue <size>
//		ping_interval <duration>
//		reload_close_delay <duration>|off
//		max_connections <n>
//		max_channels <n>
//		rate_limit <messages-per-second> [<burst>]
//		subscribe_rate <per-second> [<burst>]
//		subprotocols <name...>
//		subprotocol_optional
//		gap_policy keep|close
//		history <size> [<ttl>] [{ new_channels <per-minute>|off }]
//		presence [{
//			user <placeholder>
//			timeout <duration>
//			leave_delay <duration>
//			max_users <n>
//		}]
//		send_buffer <size>
//		compress [<min_size>]
//	}
//
// The channel on the directive line is subscribed (and, alone, published to).
// subscribe and allow may be repeated; every other subdirective may appear once.
//
// It only parses: a value that is not of its setting's kind is refused here,
// and so is a written 0 where JSON's 0 means the default (the Caddyfile says
// that by leaving the line out). Every rule on the values is Validate's,
// called at the end to point at the line at fault. Defaults are applied at
// provision, so `caddy adapt` shows what was written.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	p := &lineMap{file: d.File(), at: map[string][]int{"": {d.Line()}}}
	if d.NextArg() {
		h.Subscribe = append(h.Subscribe, d.Val())
		p.Add("subscribe", d.Line())
		if d.NextArg() {
			return d.Errf("unexpected argument %q: one channel goes on the directive line; use subscribe for more", d.Val())
		}
	}
	seen := make(map[string]bool)
	for d.NextBlock(0) {
		name := d.Val()
		if seen[name] && name != "subscribe" && name != "allow" {
			return d.Errf("%s is already set", name)
		}
		seen[name] = true
		line := d.Line()
		var err error
		switch name {
		case "subscribe":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for range args {
				p.Add(name, line)
			}
			h.Subscribe = append(h.Subscribe, args...)
		case "publish":
			if h.Publish, err = oneArg(d); err == nil && h.Publish == "" {
				err = d.Errf("publish: %v", checkChannel("")) // "" would mean the default
			}
		case "allow":
			if h.Allow == nil {
				h.Allow = new(Allow)
			}
			err = h.Allow.parseCaddyfile(d, p)
		case "redis":
			h.Redis, err = parseRedis(d, p)
		case "origins":
			if h.Origins = d.RemainingArgs(); len(h.Origins) == 0 {
				err = d.ArgErr()
			}
		case "max_message_size":
			h.MaxMessageSize, err = parseSize(d)
		case "send_queue":
			var size int64
			size, err = parseSize(d)
			h.SendQueue = int(size)
		case "send_buffer":
			var size int64
			size, err = parseSize(d)
			h.SendBuffer = int(size)
		case "ping_interval":
			h.PingInterval, err = parseDuration(d)
		case "reload_close_delay":
			h.ReloadCloseDelay, err = parseCloseDelay(d)
		case "max_connections":
			h.MaxConnections, err = parseCount(d, name)
		case "max_channels":
			h.MaxChannels, err = parseCount(d, name)
		case "rate_limit":
			err = parseRate(d, name, "messages", &h.RateLimit, &h.RateLimitBurst)
			p.Add("rate_limit_burst", line)
		case "subscribe_rate":
			err = parseRate(d, name, "subscribes", &h.SubscribeRate, &h.SubscribeRateBurst)
			p.Add("subscribe_rate_burst", line)
		case "subprotocols":
			if h.Subprotocols = d.RemainingArgs(); len(h.Subprotocols) == 0 {
				err = d.ArgErr()
			}
		case "subprotocol_optional":
			h.SubprotocolOptional = true
			if d.NextArg() {
				err = d.ArgErr()
			}
		case "gap_policy":
			h.GapPolicy, err = oneArg(d)
		case "history":
			h.History, err = parseHistory(d, p)
		case "presence":
			h.Presence, err = parsePresence(d, p)
		case "compress":
			h.Compress, err = parseCompress(d)
		default:
			err = d.Errf("unrecognized subdirective %q", name)
		}
		if err != nil {
			return err
		}
		if name != "redis" { // parseRedis records its own lines
			p.Add(name, line)
		}
	}
	return p.locate(h.Validate())
}

// lineMap remembers the line of each setting, so that a fieldError from
// Validate can name it.
type lineMap struct {
	file string
	at   map[string][]int // by field; "" is the directive's line
}

func (p *lineMap) Add(field string, line int) { p.at[field] = append(p.at[field], line) }

// locate adds the file and line of the setting at fault to err: the line of
// the field or, when it was not written, of the block it belongs to.
func (p *lineMap) locate(err error) error {
	var fe *fieldError
	if !errors.As(err, &fe) {
		return err
	}
	field := fe.field
	for field != "" && p.at[field] == nil {
		field = field[:max(strings.LastIndexByte(field, '.'), 0)]
	}
	lines := p.at[field]
	return fmt.Errorf("%w, at %s:%d", err, p.file, lines[min(fe.index, len(lines)-1)])
}

// oneArg reads exactly one argument.
func oneArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	val := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return val, nil
}

// parseSize reads one size such as 64KiB.
func parseSize(d *caddyfile.Dispenser) (int64, error) {
	name := d.Val()
	arg, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	size, err := humanize.ParseBytes(arg)
	if err != nil || size == 0 || size > math.MaxInt64 {
		return 0, d.Errf("%s: %q is not a size (e.g. 64KiB)", name, arg)
	}
	return int64(size), nil
}

// parseCount reads one integer other than 0.
func parseCount(d *caddyfile.Dispenser, name string) (int, error) {
	arg, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(arg)
	if err != nil || n == 0 {
		return 0, d.Errf("%s: %q is not a positive integer", name, arg)
	}
	return n, nil
}

// parseDuration reads one duration other than 0. A bare number is refused:
// it would be nanoseconds.
func parseDuration(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	arg, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := time.ParseDuration(arg)
	if err != nil || dur == 0 {
		return 0, d.Errf("%s: %q is not a positive duration (e.g. 30s)", name, arg)
	}
	return caddy.Duration(dur), nil
}

// parseCloseDelay reads reload_close_delay: a duration, 0, or off (kept
// open: a negative delay in JSON).
func parseCloseDelay(d *caddyfile.Dispenser) (*caddy.Duration, error) {
	arg, err := oneArg(d)
	if err != nil {
		return nil, err
	}
	delay := caddy.Duration(-1)
	if arg != "off" {
		dur, err := caddy.ParseDuration(arg)
		if err != nil || dur < 0 {
			return nil, d.Errf("reload_close_delay: %q is not a duration (e.g. 10s, 0) or off", arg)
		}
		delay = caddy.Duration(dur)
	}
	return &delay, nil
}

// parseHistory reads history <size> [<ttl>] and its optional block,
// recording the lines of its settings.
func parseHistory(d *caddyfile.Dispenser, p *lineMap) (*History, error) {
	args := d.RemainingArgs()
	if len(args) == 0 || len(args) > 2 {
		return nil, d.ArgErr()
	}
	size, err := strconv.Atoi(args[0])
	if err != nil {
		return nil, d.Errf("history: %q is not a number of messages", args[0])
	}
	hc := &History{Size: size}
	if len(args) == 2 {
		ttl, err := caddy.ParseDuration(args[1])
		if err != nil || ttl == 0 {
			return nil, d.Errf("history: %q is not a positive duration (e.g. 1h)", args[1])
		}
		hc.TTL = caddy.Duration(ttl)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if name != "new_channels" {
			return nil, d.Errf("history: unrecognized setting %q", name)
		}
		if hc.NewChannels != 0 {
			return nil, d.Errf("history: %s is already set", name)
		}
		p.Add("history."+name, d.Line())
		arg, err := oneArg(d)
		if err != nil {
			return nil, err
		}
		hc.NewChannels = -1
		if arg != "off" {
			n, err := strconv.Atoi(arg)
			if err != nil || n < 1 {
				return nil, d.Errf("new_channels: %q is not a number of channels per minute (1 or more) or off", arg)
			}
			hc.NewChannels = n
		}
	}
	return hc, nil
}

// parseCompress reads compress [<min_size>].
func parseCompress(d *caddyfile.Dispenser) (*Compression, error) {
	c := new(Compression)
	if d.CountRemainingArgs() == 0 {
		return c, nil
	}
	size, err := parseSize(d)
	c.MinSize = int(size)
	return c, err
}

// parsePresence reads presence and its optional block, recording the lines
// of its settings.
func parsePresence(d *caddyfile.Dispenser, p *lineMap) (*Presence, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	pr := new(Presence)
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return nil, d.Errf("presence: %s is already set", name)
		}
		seen[name] = true
		p.Add("presence."+name, d.Line())
		var err error
		switch name {
		case "user":
			pr.User, err = oneArg(d)
		case "timeout":
			pr.Timeout, err = parseDuration(d)
		case "leave_delay":
			var arg string
			if arg, err = oneArg(d); err == nil {
				dur, perr := caddy.ParseDuration(arg)
				if perr != nil || dur < 0 {
					return nil, d.Errf("leave_delay: %q is not a duration (e.g. 5s, 0)", arg)
				}
				delay := caddy.Duration(dur)
				pr.LeaveDelay = &delay
			}
		case "max_users":
			pr.MaxUsers, err = parseCount(d, name)
		default:
			err = d.Errf("presence: unrecognized setting %q", name)
		}
		if err != nil {
			return nil, err
		}
	}
	return pr, nil
}

// parseRate reads <name> <per-second> [<burst>] (rate_limit,
// subscribe_rate) into rate and burst; unit names what is counted.
func parseRate(d *caddyfile.Dispenser, name, unit string, rate *float64, burst *int) error {
	args := d.RemainingArgs()
	if len(args) == 0 || len(args) > 2 {
		return d.ArgErr()
	}
	r, err := strconv.ParseFloat(args[0], 64)
	if err != nil || r == 0 {
		return d.Errf("%s: %q is not a positive number of %s per second", name, args[0], unit)
	}
	*rate = r
	if len(args) == 2 {
		b, err := strconv.Atoi(args[1])
		if err != nil || b == 0 {
			return d.Errf("%s: burst %q is not a positive number of %s", name, args[1], unit)
		}
		*burst = b
	}
	return nil
}
