package redisws

// The values of the Caddyfile's subdirectives: one argument, a size, a
// count, a duration, a close delay; each error names the line.

import (
	"math"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"
)

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
