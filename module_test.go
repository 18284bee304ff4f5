package redisws

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata")

func parse(input string) (*Handler, error) {
	h := new(Handler)
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	return h, err
}

func TestCaddyfileEverySubdirective(t *testing.T) {
	h, err := parse(`redis_ws lobby {
		subscribe room:{http.request.uri.path.1} news
		subscribe alerts
		publish room:{http.request.uri.path.1}
		allow subscribe room:* user:{http.auth.user.id}
		allow publish room:*
		allow subscribe {http.auth.user.subscribe}
		redis redis://:secret@127.0.0.1:6380/2
		origins https://example.com http://localhost:8080
		max_message_size 1MiB
		send_queue 64KiB
		ping_interval 15s
		reload_close_delay 0
		stop_close_delay 5s
		max_connections 1000
		max_channels 20
		rate_limit 20 40
		subscribe_rate 10 20
		subprotocols chat.v2 chat.v1
		subprotocol_optional
		gap_policy close
		history 1000 1h
		presence {
			user {http.request.uri.query.name}
			timeout 30s
			leave_delay 0
			max_users 50
		}
		compress 512
	}`)
	if err != nil {
		t.Fatal(err)
	}
	zero := caddy.Duration(0)
	want := &Handler{
		Subscribe:           []string{"lobby", "room:{http.request.uri.path.1}", "news", "alerts"},
		Publish:             "room:{http.request.uri.path.1}",
		Allow:               &Allow{Subscribe: []string{"room:*", "user:{http.auth.user.id}", "{http.auth.user.subscribe}"}, Publish: []string{"room:*"}},
		Redis:               &RedisConfig{URL: "redis://:secret@127.0.0.1:6380/2"},
		Origins:             []string{"https://example.com", "http://localhost:8080"},
		MaxMessageSize:      1 << 20,
		SendQueue:           64 << 10,
		PingInterval:        caddy.Duration(15 * time.Second),
		ReloadCloseDelay:    &zero,
		StopCloseDelay:      caddy.Duration(5 * time.Second),
		MaxConnections:      1000,
		MaxChannels:         20,
		RateLimit:           20,
		RateLimitBurst:      40,
		SubscribeRate:       10,
		SubscribeRateBurst:  20,
		Subprotocols:        []string{"chat.v2", "chat.v1"},
		SubprotocolOptional: true,
		GapPolicy:           "close",
		History:             &History{Size: 1000, TTL: caddy.Duration(time.Hour)},
		Presence:            &Presence{User: "{http.request.uri.query.name}", Timeout: caddy.Duration(30 * time.Second), LeaveDelay: &zero, MaxUsers: 50},
		Compress:            &Compression{MinSize: 512},
	}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got  %+v\nwant %+v", h, want)
	}
}

func TestCaddyfileShortForms(t *testing.T) {
	for _, tc := range []struct {
		input string
		want  Handler
	}{
		{`redis_ws chat`, Handler{Subscribe: []string{"chat"}}},
		{`redis_ws news {
			publish off
		}`, Handler{Subscribe: []string{"news"}, Publish: "off"}},
		{`redis_ws {
			subscribe a b
			publish a
		}`, Handler{Subscribe: []string{"a", "b"}, Publish: "a"}},
		{`redis_ws chat {
			presence
		}`, Handler{Subscribe: []string{"chat"}, Presence: &Presence{}}},
		{`redis_ws chat {
			compress
		}`, Handler{Subscribe: []string{"chat"}, Compress: &Compression{}}},
		{`redis_ws chat {
			compress 1KiB
		}`, Handler{Subscribe: []string{"chat"}, Compress: &Compression{MinSize: 1024}}},
		{`redis_ws chat {
			history 10 {
				new_channels 5
			}
		}`, Handler{Subscribe: []string{"chat"}, History: &History{Size: 10, NewChannels: 5}}},
		{`redis_ws chat {
			history 10 1h {
				new_channels off
			}
		}`, Handler{Subscribe: []string{"chat"}, History: &History{Size: 10, TTL: caddy.Duration(time.Hour), NewChannels: -1}}},
	} {
		h, err := parse(tc.input)
		if err != nil {
			t.Errorf("%s: %v", tc.input, err)
			continue
		}
		if !reflect.DeepEqual(*h, tc.want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", tc.input, *h, tc.want)
		}
	}
	h, err := parse("redis_ws chat {\n reload_close_delay off\n}")
	if err != nil || h.ReloadCloseDelay == nil || *h.ReloadCloseDelay >= 0 {
		t.Errorf("reload_close_delay off: got %v, %v; want a negative delay", h.ReloadCloseDelay, err)
	}
}

// Every malformed Caddyfile gets an error that names its line and says what
// is wrong.
func TestCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		input string
		line  int
		want  string
	}{
		{"redis_ws chat {\n\tbogus 1\n}", 2, `unrecognized subdirective "bogus"`},
		{"redis_ws chat other", 1, `unexpected argument "other"`},
		{"redis_ws {\n\tredis redis://127.0.0.1:6380\n}", 1, "no channel"},
		{"redis_ws {\n\tsubscribe a b\n}", 1, "several channels are subscribed"},
		{"redis_ws chat {\n\tsubscribe\n}", 2, "wrong argument count"},
		{"redis_ws chat {\n\tpublish\n}", 2, "wrong argument count"},
		{"redis_ws chat {\n\n\tpublish a b\n}", 3, "wrong argument count"},
		{"redis_ws chat {\n\tpublish \"\"\n}", 2, "channel name is empty"},
		{"redis_ws off", 1, `"off" cannot be a channel name`},
		{"redis_ws chat {\n\tsubscribe " + strings.Repeat("x", 257) + "\n}", 2, "257 bytes long"},
		{"redis_ws \"a\x01b\"", 1, "control character"},
		{"redis_ws chat {\n\tredis http://127.0.0.1:6379\n}", 2, "redis: "},
		{"redis_ws chat {\n\tredis redis://a\n\tredis redis://b\n}", 3, "redis is already set"},
		{"redis_ws chat {\n\torigins example.com\n}", 2, `"example.com" is not an origin`},
		{"redis_ws chat {\n\torigins null\n}", 2, `"null" cannot be listed: it is the origin of sandboxed pages and local files`},
		{"redis_ws chat {\n\n\torigins https://app.example NULL\n}", 3, `"null" cannot be listed`},
		{"redis_ws chat {\n\torigins https://*.example.com\n}", 2, `"https://*.example.com": an origin cannot hold a wildcard`},
		{"redis_ws chat {\n\torigins https://user:pw@app.example\n}", 2, `"https://user:pw@app.example" is not an origin`},
		{"redis_ws chat {\n\torigins https://app.example/path\n}", 2, `"https://app.example/path" is not an origin`},
		{"redis_ws chat {\n\torigins https://app.example:99999\n}", 2, `"https://app.example:99999" is not an origin`},
		{"redis_ws chat {\n\torigins https://app.example#x\n}", 2, `"https://app.example#x" is not an origin`},
		{"redis_ws chat {\n\tmax_channels -2\n}", 2, "max_channels: -2 is negative"},
		{"redis_ws a {\n\tsubscribe b c\n\tpublish a\n\tmax_channels 2\n}", 4, "max_channels: 2 is less than the 3 channels"},
		{"redis_ws chat {\n\tallow subscribe\n}", 2, "want allow subscribe|publish"},
		{"redis_ws chat {\n\tallow read a:*\n}", 2, `"read" is not subscribe or publish`},
		{"redis_ws chat {\n\tallow publish a:*\n\tallow subscribe a:* redis_ws:*\n}", 3, `allow: subscribe: pattern "redis_ws:*": channel name starts with "redis_ws:"`},
		{"redis_ws chat {\n\tallow subscribe {http.request.uri.query.ch}\n}", 2, "a placeholder alone must be an {http.auth.user.*} one"},
		{"redis_ws chat {\n\tallow publish \"a\x01*\"\n}", 2, "control character"},
		{"redis_ws redis_ws:x", 1, `subscribe: channel name starts with "redis_ws:", which is reserved`},
		{"redis_ws chat {\n\tsubscribe redis_ws:{http.request.uri.path.1}\n}", 2, `subscribe: channel name starts with "redis_ws:", which is reserved`},
		{"redis_ws chat {\n\tpublish redis_ws:{chat}:presence\n}", 2, `publish: channel name starts with "redis_ws:", which is reserved`},
		{"redis_ws chat {\n\torigins\n}", 2, "wrong argument count"},
		{"redis_ws chat {\n\tmax_message_size lots\n}", 2, `"lots" is not a size`},
		{"redis_ws chat {\n\tmax_message_size 0\n}", 2, `"0" is not a size`},
		{"redis_ws chat {\n\tsend_queue -1\n}", 2, `"-1" is not a size`},
		{"redis_ws chat {\n\tping_interval 30\n}", 2, `"30" is not a positive duration`},
		{"redis_ws chat {\n\tping_interval -1s\n}", 2, `"-1s" is not a positive duration`},
		{"redis_ws chat {\n\treload_close_delay never\n}", 2, `"never" is not a duration`},
		{"redis_ws chat {\n\treload_close_delay 1s 2s\n}", 2, "wrong argument count"},
		{"redis_ws chat {\n\tstop_close_delay 0\n}", 2, `stop_close_delay: "0" is not a positive duration`},
		{"redis_ws chat {\n\tstop_close_delay -5s\n}", 2, `stop_close_delay: "-5s" is not a positive duration`},
		{"redis_ws chat {\n\tstop_close_delay off\n}", 2, `stop_close_delay: "off" is not a positive duration`},
		{"redis_ws chat {\n\tmax_connections 0\n}", 2, `"0" is not a positive integer`},
		{"redis_ws chat {\n\trate_limit fast\n}", 2, `"fast" is not a positive number of messages per second`},
		{"redis_ws chat {\n\trate_limit 10 0\n}", 2, `burst "0" is not a positive number`},
		{"redis_ws chat {\n\trate_limit\n}", 2, "wrong argument count"},
		{"redis_ws chat {\n\tsubscribe_rate many\n}", 2, `subscribe_rate: "many" is not a positive number of subscribes per second`},
		{"redis_ws chat {\n\tsubscribe_rate 5 0\n}", 2, `subscribe_rate: burst "0" is not a positive number of subscribes`},
		{"redis_ws chat {\n\tsubscribe_rate 1 2 3\n}", 2, "wrong argument count"},
		{"redis_ws chat {\n\tsubprotocols\n}", 2, "wrong argument count"},
		{"redis_ws chat {\n\tsubprotocols a\n\tsubprotocol_optional yes\n}", 3, "wrong argument count"},
		{"redis_ws chat {\n\tsubprotocol_optional\n}", 1, "subprotocol_optional without subprotocols"},
		{"redis_ws chat {\n\tgap_policy reload\n}", 2, `"reload" is not keep or close`},
		{"redis_ws chat {\n\tsend_buffer 1KiB\n}", 2, `"1KiB" is not a size between 4KiB and 1GiB`},
		{"redis_ws chat {\n\thistory\n}", 2, "wrong argument count"},
		{"redis_ws chat {\n\thistory many\n}", 2, `history: "many" is not a number of messages`},
		{"redis_ws chat {\n\thistory 10 1h 2h\n}", 2, "wrong argument count"},
		{"redis_ws chat {\n\thistory 10 soon\n}", 2, `history: "soon" is not a positive duration`},
		{"redis_ws chat {\n\tping_interval 5s\n\thistory 0\n}", 3, "history: size: 0 is not a number of messages from 1 to 100000"},
		{"redis_ws chat {\n\thistory 100001\n}", 2, "is not a number of messages from 1 to 100000"},
		{"redis_ws chat {\n\thistory 10 {\n\t\tnew_channels 0\n\t}\n}", 3, `new_channels: "0" is not a number of channels per minute (1 or more) or off`},
		{"redis_ws chat {\n\thistory 10 {\n\t\tnew_channels\n\t}\n}", 3, "wrong argument count"},
		{"redis_ws chat {\n\thistory 10 {\n\t\tsize 5\n\t}\n}", 3, `history: unrecognized setting "size"`},
		{"redis_ws chat {\n\thistory 10 {\n\t\tnew_channels 5\n\t\tnew_channels off\n\t}\n}", 4, "history: new_channels is already set"},
		{"redis_ws chat {\n\tpresence on\n}", 2, "wrong argument count"},
		{"redis_ws chat {\n\tpresence {\n\t\tbogus 1\n\t}\n}", 3, `presence: unrecognized setting "bogus"`},
		{"redis_ws chat {\n\tpresence {\n\t\tuser\n\t}\n}", 3, "wrong argument count"},
		{"redis_ws chat {\n\tpresence {\n\t\tmax_users 5\n\t\ttimeout 500ms\n\t}\n}", 4, "presence: timeout: 500ms is shorter than 1s"},
		{"redis_ws chat {\n\tpresence {\n\t\ttimeout 2s\n\t\ttimeout 3s\n\t}\n}", 4, "presence: timeout is already set"},
		{"redis_ws chat {\n\tpresence {\n\t\tleave_delay soon\n\t}\n}", 3, `leave_delay: "soon" is not a duration`},
		{"redis_ws chat {\n\tpresence {\n\t\tmax_users 0\n\t}\n}", 3, `"0" is not a positive integer`},
		{"redis_ws chat {\n\tpresence {\n\t\tmax_users 100001\n\t}\n}", 3, "presence: max_users: 100001 is not a number of users from 1 to 100000"},
		{"redis_ws chat {\n\tpresence\n\tpresence\n}", 3, "presence is already set"},
		{"redis_ws chat {\n\tcompress 1KiB 2KiB\n}", 2, "wrong argument count"},
		{"redis_ws chat {\n\tcompress small\n}", 2, `compress: "small" is not a size`},
		{"redis_ws chat {\n\tcompress 0\n}", 2, `compress: "0" is not a size`},
		{"redis_ws chat {\n\n\tcompress 2GiB\n}", 3, `compress: min_size: "2GiB" is not a size between 1 byte and 1GiB`},
		{"redis_ws chat {\n\tcompress\n\tcompress\n}", 3, "compress is already set"},
	} {
		_, err := parse(tc.input)
		if err == nil {
			t.Errorf("%q: no error", tc.input)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) || !strings.HasSuffix(msg, "Testfile:"+strconv.Itoa(tc.line)) {
			t.Errorf("%q:\n got %q\nwant %q at Testfile:%d", tc.input, msg, tc.want, tc.line)
		}
	}
}

// The README's JSON of the handler names every field as the module spells
// it, with values it accepts.
func TestReadmeHandlerJSON(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "\n## JSON\n")
	_, block, ok := strings.Cut(section, "```json\n")
	block, _, _ = strings.Cut(block, "```")
	if !ok {
		t.Fatal("no JSON block under ## JSON")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(block), &fields); err != nil {
		t.Fatalf("the README's handler JSON: %v", err)
	}
	delete(fields, "handler") // Caddy's, not the module's
	rest, _ := json.Marshal(fields)
	dec := json.NewDecoder(bytes.NewReader(rest))
	dec.DisallowUnknownFields()
	var h Handler
	if err := dec.Decode(&h); err != nil {
		t.Fatalf("the README's handler JSON: %v", err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("the README's handler JSON: %v", err)
	}
	ht := reflect.TypeOf(h)
	for i := range ht.NumField() {
		if tag := ht.Field(i).Tag.Get("json"); tag != "" && tag != "-" {
			if name, _, _ := strings.Cut(tag, ","); fields[name] == nil {
				t.Errorf("the README's handler JSON leaves out %q", name)
			}
		}
	}
}
