package redisws

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/caddyserver/caddy/v2"
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

// Values of RedisConfig.PubSub.
const (
	pubsubSharded = "sharded"
	pubsubClassic = "classic"
)

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
	if err := c.check(); err != nil {
		return nil, err
	}
	if c.URL == "" && len(c.Addrs) == 0 {
		c.URL = defaultRedisURL
	}
	s := &redisSetup{cfg: c, sharded: c.Cluster && c.PubSub != pubsubClassic}
	if c.URL != "" {
		opts, err := redis.ParseURL(c.URL)
		if err != nil {
			return nil, fieldErr("redis.url", errors.New(redactURLError(err, c.URL)))
		}
		s.url = opts
	}
	if c.TLS != nil {
		var err error
		if s.tls, err = c.TLS.load(); err != nil {
			return nil, fieldErr("redis.tls", err)
		}
	}
	return s, nil
}

// check rejects contradictory settings, naming the field at fault. It holds
// for the settings as written, where a value with placeholders is checked
// only once they are expanded, and for the expanded ones.
func (c *RedisConfig) check() error {
	at := func(field string, err error) error { return fieldErr("redis."+field, err) }
	needsServer := c.Username != "" || c.Password != "" || c.DB != 0 || c.TLS != nil
	switch {
	case c.URL != "" && len(c.Addrs) > 0:
		return at("addrs", errors.New("give either url or addrs, not both"))
	case c.URL != "" && (c.MasterName != "" || c.Cluster):
		return at("url", errors.New("sentinel and cluster take addrs, not url"))
	case c.URL != "" && (c.Username != "" || c.Password != "" || c.DB != 0):
		return at("url", errors.New("with url, put username, password and db in the url"))
	case c.MasterName == "" && (c.SentinelUsername != "" || c.SentinelPassword != ""):
		return at("sentinel_password", errors.New("sentinel_username and sentinel_password need master_name"))
	case c.MasterName != "" && c.Cluster:
		return at("cluster", errors.New("master_name (Sentinel) and cluster exclude each other"))
	case c.Cluster && c.DB != 0:
		return at("db", errors.New("a Redis Cluster has only db 0"))
	case c.DB < 0:
		return at("db", fmt.Errorf("%d is not a database number", c.DB))
	case c.PubSub != "" && !c.Cluster:
		return at("pubsub", errors.New("pubsub chooses between sharded and classic Pub/Sub on a cluster; add cluster"))
	case c.PubSub != "" && c.PubSub != pubsubSharded && c.PubSub != pubsubClassic && !hasPlaceholder(c.PubSub):
		return at("pubsub", fmt.Errorf("%q is neither sharded nor classic", c.PubSub))
	case len(c.Addrs) > 1 && c.MasterName == "" && !c.Cluster:
		return at("addrs", errors.New("several addrs need master_name (Sentinel) or cluster"))
	case c.URL == "" && len(c.Addrs) == 0 && c.MasterName != "":
		return at("master_name", errors.New("sentinel and cluster need addrs"))
	case c.URL == "" && len(c.Addrs) == 0 && c.Cluster:
		return at("cluster", errors.New("sentinel and cluster need addrs"))
	case c.URL == "" && len(c.Addrs) == 0 && needsServer:
		// Nothing set means the default URL; these settings need a server.
		return fieldErr("redis", errors.New("needs url or addrs"))
	}
	for _, a := range c.Addrs {
		if _, port, err := net.SplitHostPort(a); (err != nil || port == "") && !hasPlaceholder(a) {
			return at("addrs", fmt.Errorf("%q is not host:port", a))
		}
	}
	if c.URL != "" && !hasPlaceholder(c.URL) {
		if _, err := redis.ParseURL(c.URL); err != nil {
			return at("url", errors.New(redactURLError(err, c.URL)))
		}
	}
	if c.TLS != nil && c.URL != "" && !strings.HasPrefix(c.URL, "rediss://") && !hasPlaceholder(c.URL) {
		return at("tls", errors.New("tls with a url needs rediss://"))
	}
	if t := c.TLS; t != nil && (t.Cert == "") != (t.Key == "") {
		return at("tls", errors.New("cert and key go together"))
	}
	return nil
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
