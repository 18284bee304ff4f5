package redisws

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
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
