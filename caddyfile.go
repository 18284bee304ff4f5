package redisws

import (
	"math"
	"strconv"
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
//		redis <url> | { addrs …, master_name …, cluster, … } (see parseRedis)
//		origins <origin...>
//		max_message_size <size>
//		send_queue <size>
//		ping_interval <duration>
//		reload_close_delay <duration>|off
//		max_connections <n>
//		rate_limit <messages-per-second> [<burst>]
//		subprotocols <name...>
//		subprotocol_optional
//		gap_policy keep|close
//		send_buffer <size>
//	}
//
// The channel on the directive line is subscribed (and, alone, published to).
// subscribe may be repeated; every other subdirective may appear once.
// Defaults are applied at provision, so `caddy adapt` shows what was written.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		if err := checkChannelTemplate(d.Val()); err != nil {
			return d.Errf("channel: %v", err)
		}
		h.Subscribe = append(h.Subscribe, d.Val())
		if d.NextArg() {
			return d.Errf("unexpected argument %q: one channel goes on the directive line; use subscribe for more", d.Val())
		}
	}
	seen := make(map[string]bool)
	for d.NextBlock(0) {
		name := d.Val()
		if seen[name] && name != "subscribe" {
			return d.Errf("%s is already set", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "subscribe":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, ch := range args {
				if err := checkChannelTemplate(ch); err != nil {
					return d.Errf("subscribe: %v", err)
				}
			}
			h.Subscribe = append(h.Subscribe, args...)
		case "publish":
			if h.Publish, err = oneArg(d); err != nil {
				return err
			}
			if h.Publish != publishOff {
				if err := checkChannelTemplate(h.Publish); err != nil {
					return d.Errf("publish: %v", err)
				}
			}
		case "redis":
			if h.Redis, err = parseRedis(d); err != nil {
				return err
			}
		case "origins":
			h.Origins = d.RemainingArgs()
			if len(h.Origins) == 0 {
				return d.ArgErr()
			}
			for _, o := range h.Origins {
				if err := checkOrigin(o); err != nil {
					return d.Errf("origins: %v", err)
				}
			}
		case "max_message_size":
			arg, err := oneArg(d)
			if err != nil {
				return err
			}
			size, err := humanize.ParseBytes(arg)
			if err != nil || size == 0 || size > 1<<30 {
				return d.Errf("max_message_size: %q is not a size between 1 byte and 1GiB (e.g. 64KiB)", arg)
			}
			h.MaxMessageSize = int64(size)
		case "send_queue":
			arg, err := oneArg(d)
			if err != nil {
				return err
			}
			size, err := humanize.ParseBytes(arg)
			if err != nil || size == 0 || size > 1<<30 {
				return d.Errf("send_queue: %q is not a size between 1 byte and 1GiB (e.g. 1MiB)", arg)
			}
			h.SendQueue = int(size)
		case "ping_interval":
			dur, err := positiveDuration(d)
			if err != nil {
				return err
			}
			h.PingInterval = dur
		case "reload_close_delay":
			arg, err := oneArg(d)
			if err != nil {
				return err
			}
			delay := caddy.Duration(-1)
			if arg != "off" {
				dur, err := caddy.ParseDuration(arg)
				if err != nil || dur < 0 {
					return d.Errf("reload_close_delay: %q is not a duration (e.g. 10s, 0) or off", arg)
				}
				delay = caddy.Duration(dur)
			}
			h.ReloadCloseDelay = &delay
		case "max_connections":
			if h.MaxConnections, err = positiveInt(d); err != nil {
				return err
			}
		case "rate_limit":
			args := d.RemainingArgs()
			if len(args) == 0 || len(args) > 2 {
				return d.ArgErr()
			}
			rate, err := strconv.ParseFloat(args[0], 64)
			if err != nil || rate <= 0 || math.IsInf(rate, 0) {
				return d.Errf("rate_limit: %q is not a positive number of messages per second", args[0])
			}
			h.RateLimit = rate
			if len(args) == 2 {
				burst, err := strconv.Atoi(args[1])
				if err != nil || burst < 1 {
					return d.Errf("rate_limit: burst %q is not a positive number of messages", args[1])
				}
				h.RateLimitBurst = burst
			}
		case "subprotocols":
			if h.Subprotocols = d.RemainingArgs(); len(h.Subprotocols) == 0 {
				return d.ArgErr()
			}
		case "send_buffer":
			arg, err := oneArg(d)
			if err != nil {
				return err
			}
			size, err := humanize.ParseBytes(arg)
			if err != nil || size < 4096 || size > 1<<30 {
				return d.Errf("send_buffer: %q is not a size between 4KiB and 1GiB (e.g. 256KiB)", arg)
			}
			h.SendBuffer = int(size)
		case "gap_policy":
			if h.GapPolicy, err = oneArg(d); err != nil {
				return err
			}
			if h.GapPolicy != gapKeep && h.GapPolicy != gapClose {
				return d.Errf("gap_policy: %q is not keep or close", h.GapPolicy)
			}
		case "subprotocol_optional":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.SubprotocolOptional = true
		default:
			return d.Errf("unrecognized subdirective %q", name)
		}
	}
	d.Reset() // errors below name the directive's line
	d.Next()
	if len(h.Subscribe) == 0 {
		return d.Err("no channel: write one after the directive (redis_ws /ws chat) or use subscribe")
	}
	if h.Publish == "" && len(h.Subscribe) > 1 {
		return d.Err("publish: several channels are subscribed; name the one client frames go to, or off")
	}
	if h.SubprotocolOptional && len(h.Subprotocols) == 0 {
		return d.Err("subprotocol_optional without subprotocols")
	}
	return nil
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

// positiveInt reads exactly one integer greater than zero.
func positiveInt(d *caddyfile.Dispenser) (int, error) {
	name := d.Val()
	arg, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(arg)
	if err != nil || n < 1 {
		return 0, d.Errf("%s: %q is not a positive integer", name, arg)
	}
	return n, nil
}

// positiveDuration reads exactly one duration greater than zero. A bare
// number is refused: it would be nanoseconds.
func positiveDuration(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	arg, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := time.ParseDuration(arg)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%s: %q is not a positive duration (e.g. 30s)", name, arg)
	}
	return caddy.Duration(dur), nil
}
