package redisws

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
)

// The redis block: every field, as the Caddyfile writes it and as JSON.
func TestRedisBlockEveryField(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem") // a path: parsing reads no file
	h, err := parse(`redis_ws chat {
		redis {
			addrs 127.0.0.1:26380 127.0.0.1:26379
			master_name mymaster
			username {env.REDIS_USER}
			password {env.REDIS_PASSWORD}
			sentinel_username sentry
			sentinel_password {env.SENTINEL_PASSWORD}
			db 3
			tls {
				ca ` + ca + `
				server_name redis.internal
			}
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	want := &RedisConfig{
		Addrs:            []string{"127.0.0.1:26380", "127.0.0.1:26379"},
		MasterName:       "mymaster",
		Username:         "{env.REDIS_USER}",
		Password:         "{env.REDIS_PASSWORD}",
		SentinelUsername: "sentry",
		SentinelPassword: "{env.SENTINEL_PASSWORD}",
		DB:               3,
		TLS:              &RedisTLS{CA: ca, ServerName: "redis.internal"},
	}
	if !reflect.DeepEqual(h.Redis, want) {
		t.Fatalf("got  %+v\nwant %+v", h.Redis, want)
	}
	js, err := json.Marshal(h.Redis)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"addrs":["127.0.0.1:26380","127.0.0.1:26379"],"master_name":"mymaster","username":"{env.REDIS_USER}",` +
		`"password":"{env.REDIS_PASSWORD}","sentinel_username":"sentry","sentinel_password":"{env.SENTINEL_PASSWORD}","db":3,` +
		`"tls":{"ca":` + strconv.Quote(ca) + `,"server_name":"redis.internal"}}`
	if string(js) != wantJSON {
		t.Fatalf("JSON\n got %s\nwant %s", js, wantJSON)
	}

	for _, tc := range []struct {
		input string
		want  RedisConfig
	}{
		{"redis redis://127.0.0.1:6380", RedisConfig{URL: "redis://127.0.0.1:6380"}},
		{"redis {\n url rediss://127.0.0.1:6380\n tls\n}", RedisConfig{URL: "rediss://127.0.0.1:6380", TLS: &RedisTLS{}}},
		{"redis {\n addrs 127.0.0.1:7000 127.0.0.1:7001\n cluster\n}", RedisConfig{Addrs: []string{"127.0.0.1:7000", "127.0.0.1:7001"}, Cluster: true}},
		{"redis {\n addrs 127.0.0.1:7000\n cluster\n pubsub classic\n}", RedisConfig{Addrs: []string{"127.0.0.1:7000"}, Cluster: true, PubSub: "classic"}},
		{"redis {\n addrs 127.0.0.1:6380\n db 2\n}", RedisConfig{Addrs: []string{"127.0.0.1:6380"}, DB: 2}},
	} {
		h, err := parse("redis_ws chat {\n" + tc.input + "\n}")
		if err != nil {
			t.Errorf("%q: %v", tc.input, err)
			continue
		}
		if !reflect.DeepEqual(*h.Redis, tc.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.input, *h.Redis, tc.want)
		}
	}
}

// Bad combinations fail at adapt time, naming the line at fault.
func TestRedisBlockErrors(t *testing.T) {
	for _, tc := range []struct {
		block string // lines inside `redis {`, which is line 2
		line  int
		want  string
	}{
		{"addrs 127.0.0.1:7000\ncluster\ndb 1", 5, "a Redis Cluster has only db 0"},
		{"master_name mymaster", 3, "sentinel and cluster need addrs"},
		{"cluster", 3, "sentinel and cluster need addrs"},
		{"addrs 127.0.0.1:1 127.0.0.1:2", 3, "several addrs need master_name (Sentinel) or cluster"},
		{"addrs 127.0.0.1:1\nmaster_name m\ncluster", 5, "exclude each other"},
		{"addrs 127.0.0.1:1\npubsub sharded", 4, "add cluster"},
		{"addrs 127.0.0.1:1\ncluster\npubsub fast", 5, `"fast" is neither sharded nor classic`},
		{"addrs localhost", 3, `"localhost" is not host:port`},
		{"url redis://127.0.0.1\naddrs 127.0.0.1:1", 4, "either url or addrs"},
		{"url redis://127.0.0.1\npassword x", 3, "put username, password and db in the url"},
		{"url redis://127.0.0.1\ntls", 4, "needs rediss://"},
		{"addrs 127.0.0.1:1\ndb -1", 4, "is not a database number"},
		{"addrs 127.0.0.1:1\ndb", 4, "wrong argument count"},
		{"addrs 127.0.0.1:1\ntls {\ncert /etc/redis/client.pem\n}", 4, "cert and key go together"},
		{"addrs 127.0.0.1:1\ntls {\nbogus x\n}", 5, `unrecognized subdirective "bogus"`},
		{"addrs 127.0.0.1:1\nbogus", 4, `unrecognized subdirective "bogus"`},
		{"addrs 127.0.0.1:1\naddrs 127.0.0.1:2", 4, "addrs is already set"},
		{"sentinel_password x\naddrs 127.0.0.1:1", 3, "need master_name"},
		{"password x", 4, "needs url or addrs"},
	} {
		input := "redis_ws chat {\n\tredis {\n" + tc.block + "\n\t}\n}"
		_, err := parse(input)
		if err == nil {
			t.Errorf("%q: no error", tc.block)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) || !strings.HasSuffix(msg, "Testfile:"+strconv.Itoa(tc.line)) {
			t.Errorf("%q:\n got %q\nwant %q at Testfile:%d", tc.block, msg, tc.want, tc.line)
		}
	}
	if _, err := parse("redis_ws chat {\n\tredis redis://127.0.0.1 {\n\t\tdb 1\n\t}\n}"); err == nil || !strings.Contains(err.Error(), "url or a block, not both") {
		t.Errorf("url and block: got %v", err)
	}
}

// The Caddyfile names TLS files without reading them, so that `caddy adapt`
// gives the same answer on every machine; they are read at provision.
func TestCaddyfileReadsNoFile(t *testing.T) {
	h, err := parse("redis_ws chat {\n\tredis {\n\t\taddrs 127.0.0.1:1\n\t\ttls {\n\t\t\tca /nonexistent/ca.pem\n\t\t}\n\t}\n}")
	if err != nil || h.Redis.TLS.CA != "/nonexistent/ca.pem" {
		t.Fatalf("got %+v, %v; want the file named and no error", h.Redis, err)
	}
}

// JSON gets the same checks at provision, and passwords stay out of errors;
// TLS files are read then, and an error names the file.
func TestRedisConfigResolve(t *testing.T) {
	t.Setenv("TEST_REDIS_PASSWORD", "hunter2")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rc   RedisConfig
		want string
	}{
		{RedisConfig{Addrs: []string{"127.0.0.1:7000"}, Cluster: true, DB: 1}, "db 0"},
		{RedisConfig{MasterName: "m"}, "need addrs"},
		{RedisConfig{URL: "redis://:{env.TEST_REDIS_PASSWORD}@127.0.0.1:notaport"}, "url: "},
		{RedisConfig{Addrs: []string{"127.0.0.1:1"}, Password: "{env.TEST_REDIS_PASSWORD}", TLS: &RedisTLS{CA: "/nonexistent"}}, "reading ca"},
		{RedisConfig{Addrs: []string{"127.0.0.1:1"}, TLS: &RedisTLS{CA: "/nonexistent/ca.pem"}}, "/nonexistent/ca.pem: no such file"},
		{RedisConfig{Addrs: []string{"127.0.0.1:1"}, TLS: &RedisTLS{CA: notPEM}}, "no PEM certificate in ca file " + notPEM},
		{RedisConfig{Addrs: []string{"127.0.0.1:1"}, TLS: &RedisTLS{Cert: notPEM, Key: notPEM}}, "loading client certificate " + notPEM},
	} {
		_, err := tc.rc.resolve()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%+v: got %v, want %q and no password", tc.rc, err, tc.want)
		}
	}
	s, err := (&RedisConfig{}).resolve()
	if err != nil || s.url == nil || s.url.Addr != "127.0.0.1:6379" {
		t.Fatalf("default: %+v %v", s, err)
	}
}

// One broker per Redis configuration: the pool key ignores the order of
// addrs and spelled-out defaults, tells different settings apart, and holds
// no password.
func TestRedisPoolKey(t *testing.T) {
	key := func(rc RedisConfig) string {
		t.Helper()
		s, err := rc.resolve()
		if err != nil {
			t.Fatal(err)
		}
		return s.key()
	}
	a := key(RedisConfig{Addrs: []string{"127.0.0.1:7000", "127.0.0.1:7001"}, Cluster: true, Password: "hunter2"})
	b := key(RedisConfig{Addrs: []string{"127.0.0.1:7001", "127.0.0.1:7000"}, Cluster: true, Password: "hunter2", PubSub: "sharded"})
	if a != b {
		t.Errorf("same cluster, different keys: %s %s", a, b)
	}
	for _, other := range []RedisConfig{
		{Addrs: []string{"127.0.0.1:7000", "127.0.0.1:7001"}, Cluster: true, Password: "other"},
		{Addrs: []string{"127.0.0.1:7000", "127.0.0.1:7001"}, Cluster: true, Password: "hunter2", PubSub: "classic"},
		{Addrs: []string{"127.0.0.1:7000", "127.0.0.1:7001"}, MasterName: "m", Password: "hunter2"},
	} {
		if key(other) == a {
			t.Errorf("%+v shares the key of another config", other)
		}
	}
	if strings.Contains(a, "hunter2") {
		t.Errorf("password in the pool key %q", a)
	}
	if key(RedisConfig{}) != key(RedisConfig{URL: defaultRedisURL}) {
		t.Error("the default and the spelled-out default differ")
	}
}

// keySlot agrees with Redis's CLUSTER KEYSLOT (values from redis-cli).
func TestKeySlot(t *testing.T) {
	for key, slot := range map[string]int{
		"foo": 12182, "bar": 5061, "chat": 14028, "room:1": 10963,
		"{user1}.following": 8106, "{user1}.followers": 8106, "a{}b": 13694, "": 0,
	} {
		if got := bus.KeySlot(key); got != slot {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, slot)
		}
	}
}
