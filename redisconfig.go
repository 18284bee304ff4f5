package redisws

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/redis/go-redis/v9"
)

// RedisConfig says how to reach Redis: one server (URL, or a single address),
// a Sentinel-managed master (Addrs of the sentinels and MasterName), or a
// Redis Cluster (Addrs are seed nodes and Cluster is true). Placeholders such
// as {env.REDIS_PASSWORD} are expanded at load time in every string field.
type RedisConfig struct {
	// redis://[[user]:password@]host[:port][/db], rediss:// for TLS, or
	// unix://[[user]:password@]/path. Cannot be combined with addrs,
	// master_name, cluster, username, password or db (write them in the URL).
	// Default, when neither url nor addrs is set: redis://127.0.0.1:6379.
	URL string `json:"url,omitempty"`

	// host:port addresses: one Redis server; the sentinels when master_name
	// is set; seed nodes of the cluster when cluster is true.
	Addrs []string `json:"addrs,omitempty"`

	// Name of the master that the sentinels at addrs monitor.
	MasterName string `json:"master_name,omitempty"`

	// Addrs are Redis Cluster nodes. Channels are then served with sharded
	// Pub/Sub by default (see pubsub).
	Cluster bool `json:"cluster,omitempty"`

	// Cluster only: "sharded" (SSUBSCRIBE/SPUBLISH: a channel's traffic stays
	// on the shard that owns it) or "classic" (SUBSCRIBE/PUBLISH, broadcast to
	// every cluster node, what `redis-cli publish` does). Default: sharded.
	PubSub string `json:"pubsub,omitempty"`

	// ACL user and password of the Redis servers (not of the sentinels).
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`

	// ACL user and password of the sentinels, when they require one.
	SentinelUsername string `json:"sentinel_username,omitempty"`
	SentinelPassword string `json:"sentinel_password,omitempty"`

	// Database number; not for a cluster. Default: 0.
	DB int `json:"db,omitempty"`

	// Connect with TLS. An empty object uses the system's roots.
	TLS *RedisTLS `json:"tls,omitempty"`
}

// RedisTLS configures TLS towards Redis (and the sentinels).
type RedisTLS struct {
	// PEM file of the CA(s) that signed the server certificates. Default:
	// the system's roots.
	CA string `json:"ca,omitempty"`
	// PEM files of a client certificate and its key, for servers that
	// require one (tls-auth-clients).
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
	// Name to verify in the server certificate. Default: the host of the
	// address dialled.
	ServerName string `json:"server_name,omitempty"`
}

// Values of RedisConfig.PubSub.
const (
	pubsubSharded = "sharded"
	pubsubClassic = "classic"
)

// Client settings that are ours, not the user's.
const (
	clientName  = "caddy-redis-ws"
	dialTimeout = 5 * time.Second
)

// redisSetup is a RedisConfig resolved at provision: placeholders expanded,
// checked, and ready to build a client.
type redisSetup struct {
	cfg     RedisConfig // expanded
	url     *redis.Options
	tls     *tls.Config
	sharded bool
}

// resolve expands placeholders, checks the settings and loads the TLS files.
// Errors never hold a password.
func (rc *RedisConfig) resolve() (*redisSetup, error) {
	repl := caddy.NewReplacer()
	expand := func(s string) string { return repl.ReplaceKnown(s, "") }
	c := RedisConfig{
		URL:              expand(rc.URL),
		MasterName:       expand(rc.MasterName),
		Cluster:          rc.Cluster,
		PubSub:           expand(rc.PubSub),
		Username:         expand(rc.Username),
		Password:         expand(rc.Password),
		SentinelUsername: expand(rc.SentinelUsername),
		SentinelPassword: expand(rc.SentinelPassword),
		DB:               rc.DB,
	}
	for _, a := range rc.Addrs {
		c.Addrs = append(c.Addrs, expand(a))
	}
	if rc.TLS != nil {
		c.TLS = &RedisTLS{CA: expand(rc.TLS.CA), Cert: expand(rc.TLS.Cert), Key: expand(rc.TLS.Key), ServerName: expand(rc.TLS.ServerName)}
	}
	if c.URL == "" && len(c.Addrs) == 0 && c.MasterName == "" && !c.Cluster {
		c.URL = defaultRedisURL
	}
	if _, err := c.check(); err != nil {
		return nil, err
	}
	s := &redisSetup{cfg: c, sharded: c.Cluster && c.PubSub != pubsubClassic}
	if c.URL != "" {
		opts, err := redis.ParseURL(c.URL)
		if err != nil {
			return nil, fmt.Errorf("url: %w", errors.New(redactURLError(err, c.URL)))
		}
		s.url = opts
	}
	if c.TLS != nil {
		var err error
		if s.tls, err = c.TLS.load(); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
	}
	return s, nil
}

// check rejects contradictory settings. It returns the name of the field at
// fault with the error, so that the Caddyfile can point at its line.
func (c *RedisConfig) check() (string, error) {
	switch {
	case c.URL != "" && len(c.Addrs) > 0:
		return "addrs", errors.New("give either url or addrs, not both")
	case c.URL != "" && (c.MasterName != "" || c.Cluster):
		return "url", errors.New("sentinel and cluster take addrs, not url")
	case c.URL != "" && (c.Username != "" || c.Password != "" || c.DB != 0):
		return "url", errors.New("with url, put username, password and db in the url")
	case c.MasterName == "" && (c.SentinelUsername != "" || c.SentinelPassword != ""):
		return "sentinel_password", errors.New("sentinel_username and sentinel_password need master_name")
	case c.MasterName != "" && c.Cluster:
		return "cluster", errors.New("master_name (Sentinel) and cluster exclude each other")
	case c.Cluster && c.DB != 0:
		return "db", errors.New("a Redis Cluster has only db 0")
	case c.DB < 0:
		return "db", fmt.Errorf("%d is not a database number", c.DB)
	case c.PubSub != "" && !c.Cluster:
		return "pubsub", errors.New("pubsub chooses between sharded and classic Pub/Sub on a cluster; add cluster")
	case c.PubSub != "" && c.PubSub != pubsubSharded && c.PubSub != pubsubClassic:
		return "pubsub", fmt.Errorf("%q is neither sharded nor classic", c.PubSub)
	case len(c.Addrs) > 1 && c.MasterName == "" && !c.Cluster:
		return "addrs", errors.New("several addrs need master_name (Sentinel) or cluster")
	}
	if c.URL == "" && len(c.Addrs) == 0 && c.MasterName != "" {
		return "master_name", errors.New("sentinel and cluster need addrs")
	}
	if c.URL == "" && len(c.Addrs) == 0 && c.Cluster {
		return "cluster", errors.New("sentinel and cluster need addrs")
	}
	for _, a := range c.Addrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return "addrs", fmt.Errorf("%q is not host:port", a)
		}
	}
	if c.TLS != nil && c.URL != "" && !strings.HasPrefix(c.URL, "rediss://") {
		return "tls", errors.New("tls with a url needs rediss://")
	}
	if t := c.TLS; t != nil && (t.Cert == "") != (t.Key == "") {
		return "tls", errors.New("cert and key go together")
	}
	return "", nil
}

// load reads the files named in t.
func (t *RedisTLS) load() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("reading ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no PEM certificate in ca file %s", t.CA)
		}
	}
	if t.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// key identifies the connection settings in the broker pool: handlers that
// name the same Redis share one subscriber, whatever the order of addrs. It is
// a hash, so that the password it covers cannot leak through it.
func (s *redisSetup) key() string {
	c := s.cfg
	c.Addrs = slices.Clone(c.Addrs)
	slices.Sort(c.Addrs)
	c.Addrs = slices.Compact(c.Addrs)
	if c.Cluster && c.PubSub == "" {
		c.PubSub = pubsubSharded
	}
	b, _ := json.Marshal(c) // plain strings and numbers: cannot fail
	sum := sha256.Sum256(b)
	return "redis:" + hex.EncodeToString(sum[:])
}

// describe names the Redis for logs, without credentials.
func (s *redisSetup) describe() string {
	c := s.cfg
	user := c.Username
	if s.url != nil {
		user = s.url.Username
	}
	if user != "" {
		user += "@"
	}
	return user + s.where()
}

func (s *redisSetup) where() string {
	c := s.cfg
	switch {
	case c.MasterName != "":
		return fmt.Sprintf("sentinel master %s via %s", c.MasterName, strings.Join(c.Addrs, ","))
	case c.Cluster:
		return "cluster " + strings.Join(c.Addrs, ",")
	case s.url != nil:
		return s.url.Addr
	}
	return c.Addrs[0]
}

// client builds the go-redis client; it dials lazily, so this does no I/O.
// It is a *redis.Client for one server or Sentinel, a *redis.ClusterClient
// for a cluster.
func (s *redisSetup) client() redis.UniversalClient {
	c := s.cfg
	switch {
	case s.url != nil:
		opts := *s.url
		opts.ClientName = clientName
		opts.DialTimeout = dialTimeout
		if s.tls != nil {
			opts.TLSConfig = s.tls
		}
		return redis.NewClient(&opts)
	case c.MasterName != "":
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       c.MasterName,
			SentinelAddrs:    c.Addrs,
			SentinelUsername: c.SentinelUsername,
			SentinelPassword: c.SentinelPassword,
			Username:         c.Username,
			Password:         c.Password,
			DB:               c.DB,
			ClientName:       clientName,
			DialTimeout:      dialTimeout,
			TLSConfig:        s.tls,
		})
	case c.Cluster:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:       c.Addrs,
			Username:    c.Username,
			Password:    c.Password,
			ClientName:  clientName,
			DialTimeout: dialTimeout,
			TLSConfig:   s.tls,
		})
	}
	return redis.NewClient(&redis.Options{
		Addr:        c.Addrs[0],
		Username:    c.Username,
		Password:    c.Password,
		DB:          c.DB,
		ClientName:  clientName,
		DialTimeout: dialTimeout,
		TLSConfig:   s.tls,
	})
}

// redactURLError keeps the password of a Redis URL out of an error message,
// even when the URL is too malformed to parse.
func redactURLError(err error, raw string) string {
	msg := err.Error()
	rest := raw[strings.Index(raw, "://")+1:] // whole string when there is no scheme
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		if _, password, ok := strings.Cut(rest[:at], ":"); ok && password != "" {
			msg = strings.ReplaceAll(msg, password, "xxxxx")
		}
	}
	return msg
}

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
// What can be checked without the environment is checked here, so that
// `caddy adapt` and `caddy validate` point at the line at fault.
func parseRedis(d *caddyfile.Dispenser) (*RedisConfig, error) {
	rc := new(RedisConfig)
	if d.NextArg() {
		rc.URL = d.Val()
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		if d.NextBlock(d.Nesting()) {
			return nil, d.Err("redis takes a url or a block, not both")
		}
		if !hasPlaceholder(rc.URL) {
			if _, err := redis.ParseURL(rc.URL); err != nil {
				return nil, d.Errf("redis: %s", redactURLError(err, rc.URL))
			}
		}
		return rc, nil
	}
	lines := make(map[string]int) // line of each field, for errors found later
	nesting := d.Nesting()
	for d.NextBlock(nesting) {
		name := d.Val()
		if _, seen := lines[name]; seen {
			return nil, d.Errf("redis: %s is already set", name)
		}
		lines[name] = d.Line()
		var err error
		switch name {
		case "url":
			rc.URL, err = oneArg(d)
			if err == nil && !hasPlaceholder(rc.URL) {
				if _, perr := redis.ParseURL(rc.URL); perr != nil {
					err = d.Errf("redis: url: %s", redactURLError(perr, rc.URL))
				}
			}
		case "addrs":
			rc.Addrs = d.RemainingArgs()
			if len(rc.Addrs) == 0 {
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
				if rc.DB, err = strconv.Atoi(arg); err != nil || rc.DB < 0 {
					err = d.Errf("redis: db: %q is not a database number", arg)
				}
			}
		case "tls":
			rc.TLS, err = parseRedisTLS(d)
		default:
			err = d.Errf("redis: unrecognized subdirective %q", name)
		}
		if err != nil {
			return nil, err
		}
	}
	at := func(field string, err error) error {
		line, ok := lines[field]
		if !ok {
			line = d.Line()
		}
		return fmt.Errorf("redis: %s: %w, at %s:%d", field, err, d.File(), line)
	}
	if field, err := rc.check(); err != nil {
		return nil, at(field, err)
	}
	if rc.URL == "" && len(rc.Addrs) == 0 {
		return nil, d.Err("redis: the block needs url or addrs")
	}
	if t := rc.TLS; t != nil && !hasPlaceholder(t.CA+t.Cert+t.Key) {
		if _, err := t.load(); err != nil {
			return nil, at("tls", err)
		}
	}
	return rc, nil
}

// parseRedisTLS reads `tls` alone (system roots) or `tls { ... }`.
func parseRedisTLS(d *caddyfile.Dispenser) (*RedisTLS, error) {
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
		// Reading the files here names the line at fault.
		if (name == "ca" || name == "cert" || name == "key") && !hasPlaceholder(d.Val()) {
			if _, err := os.Stat(d.Val()); err != nil {
				return nil, d.Errf("redis: tls: %s: %v", name, err)
			}
		}
		if name == "ca" && !hasPlaceholder(t.CA) {
			if _, err := (&RedisTLS{CA: t.CA}).load(); err != nil {
				return nil, d.Errf("redis: tls: %v", err)
			}
		}
	}
	return t, nil
}
