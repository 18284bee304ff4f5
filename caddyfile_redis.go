package redisws

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// parseRedis reads the redis subdirective: a URL, or a block.
//
//	redis <url>
//	redis {
//		url <url>
//		addrs <host:port...>
//		master_name <name>
//		cluster
//		pubsub sharded|classic
//		username <user>
//		password <password>
//		sentinel_username <user>
//		sentinel_password <password>
//		db <n>
//		tls [{
//			ca <file>
//			cert <file>
//			key <file>
//			server_name <name>
//		}]
//	}
//
// It touches no file: the TLS files are read at provision.
func parseRedis(d *caddyfile.Dispenser, p *lineMap) (*RedisConfig, error) {
	rc := new(RedisConfig)
	if d.NextArg() {
		p.Add("redis", d.Line())
		rc.URL = d.Val()
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		if d.NextBlock(d.Nesting()) {
			return nil, d.Err("redis takes a url or a block, not both")
		}
		return rc, nil
	}
	seen := make(map[string]bool)
	nesting := d.Nesting()
	for d.NextBlock(nesting) {
		name := d.Val()
		if seen[name] {
			return nil, d.Errf("redis: %s is already set", name)
		}
		seen[name] = true
		p.Add("redis."+name, d.Line())
		var err error
		switch name {
		case "url":
			rc.URL, err = oneArg(d)
		case "addrs":
			if rc.Addrs = d.RemainingArgs(); len(rc.Addrs) == 0 {
				err = d.ArgErr()
			}
		case "master_name":
			rc.MasterName, err = oneArg(d)
		case "cluster":
			rc.Cluster = true
			if d.NextArg() {
				err = d.ArgErr()
			}
		case "pubsub":
			rc.PubSub, err = oneArg(d)
		case "username":
			rc.Username, err = oneArg(d)
		case "password":
			rc.Password, err = oneArg(d)
		case "sentinel_username":
			rc.SentinelUsername, err = oneArg(d)
		case "sentinel_password":
			rc.SentinelPassword, err = oneArg(d)
		case "db":
			var arg string
			if arg, err = oneArg(d); err == nil {
				if rc.DB, err = strconv.Atoi(arg); err != nil {
					err = d.Errf("redis: db: %q is not a database number", arg)
				}
			}
		case "tls":
			rc.TLS, err = parseRedisTLS(d, p)
		default:
			err = d.Errf("redis: unrecognized subdirective %q", name)
		}
		if err != nil {
			return nil, err
		}
	}
	// What the block lacks is reported at its end.
	p.Add("redis", d.Line())
	return rc, nil
}

// parseRedisTLS reads `tls` alone (system roots) or `tls { ... }`.
func parseRedisTLS(d *caddyfile.Dispenser, p *lineMap) (*RedisTLS, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	t := new(RedisTLS)
	nesting := d.Nesting()
	seen := make(map[string]bool)
	for d.NextBlock(nesting) {
		name := d.Val()
		if seen[name] {
			return nil, d.Errf("redis: tls: %s is already set", name)
		}
		seen[name] = true
		p.Add("redis.tls."+name, d.Line())
		var err error
		switch name {
		case "ca":
			t.CA, err = oneArg(d)
		case "cert":
			t.Cert, err = oneArg(d)
		case "key":
			t.Key, err = oneArg(d)
		case "server_name":
			t.ServerName, err = oneArg(d)
		default:
			err = d.Errf("redis: tls: unrecognized subdirective %q", name)
		}
		if err != nil {
			return nil, err
		}
	}
	return t, nil
}
