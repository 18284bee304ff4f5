package e2e

// A Redis that asks for TLS or for an ACL user: the node connects with
// rediss:// or the redis block's tls, username and password; a wrong CA, a
// user without rights or a wrong password is a clear warning in its log
// while it keeps serving, and no password reaches the log.

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

// TLS with rediss:// (CA from the system roots: SSL_CERT_FILE) and with the
// block form (CA file and a client certificate); a wrong CA is a clear error
// in the log while the node keeps serving and retrying.
func TestRedisTLS(t *testing.T) {
	pki := newTestPKI(t)
	rs, tlsPort := startRedisTLS(t, pki)
	rdb := rs.Client(t)
	env := map[string]string{
		"REDIS_TLS_PORT": strconv.Itoa(tlsPort), "SSL_CERT_FILE": pki.CA,
		"CA": pki.CA, "CERT": pki.ClientCert, "KEY": pki.ClientKey,
	}
	byURL := startNode(t, "node-url", siteCaddyfile("", `
	redis_ws /ws chat {
		redis rediss://127.0.0.1:{$REDIS_TLS_PORT}
	}`), env)
	byBlock := startNode(t, "node-block", siteCaddyfile("", `
	redis_ws /ws chat {
		redis {
			addrs 127.0.0.1:{$REDIS_TLS_PORT}
			tls {
				ca {$CA}
				cert {$CERT}
				key {$KEY}
			}
		}
	}`), env)
	testkit.Eventually(t, wait, func() bool { return numsub(t, rdb, "chat") == 2 }, "both nodes should subscribe over TLS")
	a, b := dialWS(t, byURL.WSURL("/ws"), nil), dialWS(t, byBlock.WSURL("/ws"), nil)
	a.SendText(t, "from url")
	b.SendText(t, "from block")
	for _, c := range []*wsClient{a, b} {
		got := map[string]bool{}
		for _, m := range c.Collect(t, 2, wait) {
			got[string(m.Data)] = true
		}
		if !got["from url"] || !got["from block"] {
			t.Fatalf("got %v", got)
		}
	}

	// Wrong CA: through a relay that counts the connection attempts.
	relay := startRelay(t, fmt.Sprintf("127.0.0.1:%d", tlsPort))
	env["RELAY"] = relay.Addr
	env["OTHER_CA"] = pki.OtherCA
	wrong := startNode(t, "node-wrong-ca", siteCaddyfile("", `
	redis_ws /ws chat {
		redis {
			addrs {$RELAY}
			tls {
				ca {$OTHER_CA}
			}
		}
	}`), env)
	testkit.Eventually(t, wait, func() bool {
		return countLines(wrong.Logs(), `"warn"`, "redis unavailable", "certificate signed by unknown authority") == 1
	}, "no clear warning about the certificate")
	c := dialWS(t, wrong.WSURL("/ws"), nil) // still serving
	c.SendText(t, "held")
	seen := relay.Conns()
	testkit.Eventually(t, wait, func() bool { return relay.Conns() >= seen+2 }, "the node stopped retrying")
	if got := countLines(wrong.Logs(), "redis unavailable"); got != 1 {
		t.Fatalf("%d warnings for one outage, want 1", got)
	}
}

// An ACL user limited to the module's channels works; a user without the
// rights gets a clear error in the log and the node keeps serving; passwords
// never reach the logs.
func TestRedisACL(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	ctx := context.Background()
	const chatPW, nochanPW = "chat-pw-s3cr3t", "nochan-pw-s3cr3t"
	for _, args := range [][]any{
		{"ACL", "SETUSER", "chatuser", "on", ">" + chatPW, "resetchannels", "&chat*", "-@all",
			"+subscribe", "+unsubscribe", "+publish", "+ping", "+hello", "+client|setname"},
		{"ACL", "SETUSER", "nochan", "on", ">" + nochanPW, "resetchannels", "-@all",
			"+subscribe", "+unsubscribe", "+publish", "+ping", "+hello", "+client|setname"},
	} {
		if err := rdb.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args[:3], err)
		}
	}
	n := startNode(t, "node", siteCaddyfile("", `
	redis_ws /ws chat {
		redis {
			addrs 127.0.0.1:{$REDIS_PORT}
			username chatuser
			password {env.CHAT_PW}
		}
	}
	redis_ws /other other {
		redis {
			addrs 127.0.0.1:{$REDIS_PORT}
			username nochan
			password {env.NOCHAN_PW}
		}
	}
	redis_ws /badpw chat {
		redis {
			addrs 127.0.0.1:{$REDIS_PORT}
			username chatuser
			password wrong-pw-s3cr3t
		}
	}`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port), "CHAT_PW": chatPW, "NOCHAN_PW": nochanPW})

	c := dialWS(t, n.WSURL("/ws"), nil)
	testkit.Eventually(t, wait, func() bool { return numsub(t, rdb, "chat") == 1 }, "chatuser did not subscribe")
	c.SendText(t, "allowed")
	if m := c.Next(t, wait); string(m.Data) != "allowed" {
		t.Fatalf("got %v", m)
	}
	publish(t, rdb, "chat", "from redis")
	if m := c.Next(t, wait); string(m.Data) != "from redis" {
		t.Fatalf("got %v", m)
	}

	o := dialWS(t, n.WSURL("/other"), nil)
	testkit.Eventually(t, wait, func() bool {
		return countLines(n.Logs(), `"warn"`, "redis refused a subscription", "NOPERM") == 1
	}, "no clear error for a user without channel rights")
	o.SendText(t, "refused")
	testkit.Eventually(t, wait, func() bool { return countLines(n.Logs(), `"warn"`, "redis refused a publish", "NOPERM") == 1 }, "no clear error for the refused publish")
	testkit.Eventually(t, wait, func() bool {
		return countLines(n.Logs(), `"warn"`, "redis unavailable", "WRONGPASS") == 1
	}, "no clear error for a wrong password")

	// The allowed user still works, and nothing crashed.
	c.SendText(t, "still fine")
	if m := c.Next(t, wait); string(m.Data) != "still fine" {
		t.Fatalf("got %v", m)
	}
	for _, secret := range []string{chatPW, nochanPW, "wrong-pw-s3cr3t"} {
		if strings.Contains(n.Logs(), secret) {
			t.Fatalf("password %q in the logs", secret)
		}
	}
}

// Warnings a client can cause, by naming channels the Redis user may not
// use, come at most once a minute per kind, whatever good requests come
// between them, and never carry the channel name; every occurrence is at
// debug level.
func TestClientCausedWarningsLimited(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	const pw = "limited-pw"
	// Any room's channel, only room ok's keys: the history of any other
	// room can be neither written nor read.
	if err := rdb.Do(context.Background(), "ACL", "SETUSER", "limited", "on", ">"+pw,
		"resetchannels", "&room:*", "resetkeys", "~redis_ws:{room:ok}:*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, "node", siteCaddyfile("\tdebug", `
	redis_ws /rooms/* {
		subscribe room:{http.request.uri.path.1}
		publish room:{http.request.uri.path.1}
		history 100 1h
		redis {
			addrs 127.0.0.1:{$REDIS_PORT}
			username limited
			password {env.PW}
		}
	}`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port), "PW": pw})
	const rounds = 10
	for i := range rounds {
		if r := postMessage(t, n.URL("/rooms/ok"), "fine", nil); r.Status != http.StatusOK {
			t.Fatalf("POST to room ok: %d %q", r.Status, r.Body)
		}
		if r := postMessage(t, n.URL(fmt.Sprintf("/rooms/secret-post-%d", i)), "refused", nil); r.Status != http.StatusBadGateway {
			t.Fatalf("POST to a room without key rights: %d %q, want 502", r.Status, r.Body)
		}
		dialWS(t, n.WSURL("/rooms/ok"), nil).Close()
		dialWS(t, n.WSURL(fmt.Sprintf("/rooms/secret-ws-%d", i)), nil).Close() // its history cannot be read
	}
	messages := []string{"redis refused a publish", "cannot read the history to fill a gap"}
	// Every refusal is logged once with its channel, at some level.
	named := func(msg string) int { return countLines(n.Logs(), msg, `"channel":"room:secret-`) }
	testkit.Eventually(t, wait, func() bool { return named(messages[0]) == rounds && named(messages[1]) == rounds },
		"not every refusal is logged: %v publishes, %v history reads",
		atFailure(func() any { return named(messages[0]) }), atFailure(func() any { return named(messages[1]) }))
	var warns []string
	for _, line := range strings.Split(n.Logs(), "\n") {
		if strings.Contains(line, `"level":"warn"`) && strings.Contains(line, `"logger":"http.handlers.redis_ws"`) {
			warns = append(warns, line)
		}
	}
	for _, msg := range messages {
		if got := countLines(strings.Join(warns, "\n"), msg, `"error":"NOPERM"`); got != 1 {
			t.Errorf("%d warnings %q with the error's code, want 1 in a minute:\n%s", got, msg, strings.Join(warns, "\n"))
		}
		if got := countLines(n.Logs(), `"level":"debug"`, msg); got != rounds {
			t.Errorf("%d debug lines %q, want one per refusal: %d", got, msg, rounds)
		}
	}
	for _, line := range warns {
		if strings.Contains(line, "secret") {
			t.Errorf("a warning names a client's channel: %s", line)
		}
	}
}
