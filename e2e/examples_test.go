package e2e

// Tests of the cluster example (examples/cluster: two redis_ws nodes and a
// Caddy load balancer, as examples/run.sh starts them) and of the example
// Caddyfiles with the caddy CLI.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

// redialLikeThePage connects again the way the chat page does after its
// socket dropped: wait (0.5s, doubling up to 10s, each between half and all
// of it), try, and wait longer after each failure, until the deadline. The
// waits are the client's backoff, the behaviour under test, not a guess at
// how long something takes. It returns the client and how many attempts it
// took.
func redialLikeThePage(t *testing.T, url string, header http.Header, deadline time.Time) (*wsClient, int) {
	t.Helper()
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		time.Sleep(delay/2 + rand.N(delay/2))
		c, resp, err := tryDialWS(t, url, header)
		if err == nil {
			return c, attempt
		}
		status := "no response"
		if resp != nil {
			status = resp.Status
		}
		t.Logf("redial %s: attempt %d failed: %v (%s)", url, attempt, err, status)
		if time.Now().After(deadline) {
			t.Fatalf("redial %s: no connection after %d attempts", url, attempt)
		}
		delay = min(2*delay, 10*time.Second)
	}
}

// collectTexts takes n messages from c and returns their texts, sorted:
// messages of different senders may arrive in any order.
func collectTexts(t *testing.T, c *wsClient, n int) []string {
	t.Helper()
	var got []string
	for _, m := range c.Collect(t, n, wait) {
		got = append(got, string(m.Data))
	}
	slices.Sort(got)
	return got
}

// Through the load balancer of the cluster example: clients spread over
// both nodes all receive every message; when a node stops, its clients
// reconnect through the balancer to the other node, at their first
// attempt, and traffic goes on.
func TestClusterThroughBalancer(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.Client(t)
	node1 := startExampleNode(t, "node1", rs, nil)
	node2 := startExampleNode(t, "node2", rs, nil)
	lb := startExampleBalancer(t, node1, node2)

	// The page comes through the balancer.
	if status, body := httpGet(t, lb.URL("/")); status != http.StatusOK || !strings.Contains(body, "<title>redis_ws chat</title>") {
		t.Fatalf("GET / through the balancer: %d %q", status, tail(body, 300))
	}

	// A browser on the page sends the balancer's address as Origin. The
	// balancer passes the Host header on unchanged (reverse_proxy's
	// default), so the node compares the origin with the host the browser
	// asked for and redis_ws's default origin check lets the page in. The
	// check is still on: another origin is refused.
	pageOrigin := http.Header{"Origin": {fmt.Sprintf("http://127.0.0.1:%d", lb.Port)}}
	if _, resp, err := tryDialWS(t, lb.WSURL("/ws"), http.Header{"Origin": {"http://elsewhere.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin through the balancer: want 403, got err %v, response %v", err, resp)
	}

	// least_conn spreads connections made one after the other evenly: three
	// on each node (checked below, when node 2 stops).
	const n = 6
	clients := make([]*wsClient, n)
	for i := range clients {
		clients[i] = dialWS(t, lb.WSURL("/ws"), pageOrigin)
	}
	var want []string
	for i, c := range clients {
		msg := fmt.Sprintf("from client %d", i)
		c.SendText(t, msg)
		want = append(want, msg)
	}
	publish(t, rdb, "chat", "from redis")
	want = append(want, "from redis")
	slices.Sort(want)
	for i, c := range clients {
		if got := collectTexts(t, c, len(want)); !slices.Equal(got, want) {
			t.Fatalf("client %d received %q, want %q", i, got, want)
		}
	}

	// Stop node 2: its clients are closed with 1001 (going away), which the
	// balancer passes on; node 1's stay open. That tells who was where.
	node2.Stop(t)
	closed := func() (ids []int) {
		for i, c := range clients {
			if c.Closed() {
				ids = append(ids, i)
			}
		}
		return ids
	}
	testkit.Eventually(t, wait, func() bool { return len(closed()) == n/2 }, "want the %d clients of node 2 closed", n/2)
	moved := closed()
	for _, i := range moved {
		if code, _ := clients[i].WaitClosed(t, wait); code != 1001 {
			t.Errorf("client %d: closed with %d, want 1001 (going away)", i, code)
		}
	}
	t.Logf("clients on node 2: %v; the others were on node 1", moved)

	// They reconnect through the balancer, like the page. least_conn first
	// picks the stopped node, which has no connection left, unless a health
	// check has already taken it out; lb_try_duration makes the balancer try
	// node 1 instead of answering 502, so the first attempt succeeds.
	deadline := time.Now().Add(wait)
	for _, i := range moved {
		c, attempts := redialLikeThePage(t, lb.WSURL("/ws"), pageOrigin, deadline)
		if attempts != 1 {
			t.Errorf("client %d reconnected at attempt %d, want 1 (the balancer should retry on the live node)", i, attempts)
		}
		clients[i] = c
	}

	// Traffic goes on, from a moved client and from Redis, to everyone.
	clients[moved[0]].SendText(t, "after the failover")
	publish(t, rdb, "chat", "from redis after the failover")
	want = []string{"after the failover", "from redis after the failover"}
	for i, c := range clients {
		if got := collectTexts(t, c, len(want)); !slices.Equal(got, want) {
			t.Fatalf("client %d received %q after the failover, want %q", i, got, want)
		}
		c.ExpectNothing(t, 0)
	}

	// Every connection is on node 1 now, the reconnected ones too: stopping
	// node 1 closes them all with 1001.
	node1.Stop(t)
	for i, c := range clients {
		if code, _ := c.WaitClosed(t, wait); code != 1001 {
			t.Errorf("client %d: closed with %d when node 1 stopped, want 1001", i, code)
		}
	}
}

// caddyCLI runs the test's Caddy binary in the module root with a clean
// environment for the example files: none of the variables they read is
// set, so their defaults apply, as for someone who runs `caddy validate
// --config examples/cluster/lb.caddyfile`. Caddy's own files go to a
// temporary directory.
func caddyCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBinary(t), args...)
	dir := t.TempDir()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PORT", "ADMIN_PORT", "REDIS_PORT", "CHAT_ROOT", "NODE1", "NODE2", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "GORACE":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	// atexit_sleep_ms=0: a -race binary otherwise sleeps 1s at exit.
	cmd.Env = append(cmd.Env, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "GORACE=atexit_sleep_ms=0")
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if bytes.Contains(errOut.Bytes(), []byte("WARNING: DATA RACE")) {
		t.Errorf("DATA RACE in `caddy %s`:\n%s", strings.Join(args, " "), errOut.String())
	}
	return out.String(), errOut.String(), err
}

// adaptedHandlers collects every object with a "handler" key in an adapted
// config, by handler name.
func adaptedHandlers(v any, found map[string][]map[string]any) {
	switch v := v.(type) {
	case map[string]any:
		if name, ok := v["handler"].(string); ok {
			found[name] = append(found[name], v)
		}
		for _, e := range v {
			adaptedHandlers(e, found)
		}
	case []any:
		for _, e := range v {
			adaptedHandlers(e, found)
		}
	}
}

// The example Caddyfiles are valid (`caddy validate` exits 0), adapt to the
// JSON they mean with no warning, and are formatted (`caddy fmt` prints
// them unchanged).
func TestExampleCaddyfiles(t *testing.T) {
	for _, file := range []string{"Caddyfile.example", nodeCaddyfile, balancerCaddyfile} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			if out, errOut, err := caddyCLI(t, "validate", "--config", file, "--adapter", "caddyfile"); err != nil || !strings.Contains(out+errOut, "Valid configuration") {
				t.Fatalf("caddy validate --config %s: %v\n%s%s", file, err, out, errOut)
			}

			formatted, errOut, err := caddyCLI(t, "fmt", file)
			if err != nil {
				t.Fatalf("caddy fmt %s: %v\n%s", file, err, errOut)
			}
			if src := readExample(t, file); formatted != src {
				t.Errorf("%s is not formatted; `caddy fmt --overwrite %s` gives:\n%s", file, file, formatted)
			}

			// No --adapter: a name ending in .caddyfile (or starting with
			// Caddyfile) is enough for Caddy to use the Caddyfile adapter.
			out, errOut, err := caddyCLI(t, "adapt", "--config", file)
			if err != nil {
				t.Fatalf("caddy adapt --config %s: %v\n%s", file, err, errOut)
			}
			if strings.Contains(errOut, `"level":"warn"`) {
				t.Errorf("caddy adapt --config %s warns:\n%s", file, errOut)
			}
			var config any
			if err := json.Unmarshal([]byte(out), &config); err != nil {
				t.Fatalf("caddy adapt --config %s: output is not JSON: %v\n%s", file, err, out)
			}
			found := map[string][]map[string]any{}
			adaptedHandlers(config, found)
			switch file {
			case nodeCaddyfile:
				if len(found["redis_ws"]) != 1 || len(found["file_server"]) != 1 || len(found["static_response"]) != 1 {
					t.Fatalf("want one redis_ws, file_server and static_response (/health), got %v", found)
				}
				if got := found["redis_ws"][0]["subscribe"]; fmt.Sprint(got) != "[chat]" {
					t.Errorf("redis_ws subscribes %v, want [chat]", got)
				}
				// history 1000 1h: what the chat page resumes from.
				if got, _ := json.Marshal(found["redis_ws"][0]["history"]); string(got) != `{"size":1000,"ttl":3600000000000}` {
					t.Errorf("redis_ws history %s, want 1000 messages for 1h", got)
				}
			case balancerCaddyfile:
				if len(found["reverse_proxy"]) != 1 {
					t.Fatalf("want one reverse_proxy, got %v", found)
				}
				rp, _ := json.Marshal(found["reverse_proxy"][0])
				for _, want := range []string{
					`"dial":"127.0.0.1:8001"`, `"dial":"127.0.0.1:8002"`,
					`"policy":"least_conn"`, `"try_duration":5000000000`,
					`"fail_duration":10000000000`, `"uri":"/health"`,
				} {
					if !bytes.Contains(rp, []byte(want)) {
						t.Errorf("reverse_proxy lacks %s: %s", want, rp)
					}
				}
			}
		})
	}
}
