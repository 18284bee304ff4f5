package e2e

// What the tests run on a Caddy node and read back from it: the
// Caddyfiles (the example files among them, and the nodes and balancer of
// the cluster example), the log lines, the metrics and the goroutine count.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

func exampleCaddyfile(t *testing.T) string {
	t.Helper()
	return readExample(t, "Caddyfile.example")
}

// siteCaddyfile wraps site directives in the admin and site blocks the
// harness expects.
func siteCaddyfile(globals, site string) string {
	return "{\n\tadmin 127.0.0.1:{$ADMIN_PORT}\n" + globals + "\n}\n\n:{$PORT} {\n" + site + "\n}\n"
}

// chatNode starts a node whose site has redis_ws /ws chat, with directives
// added to it, and respond /health.
func chatNode(t *testing.T, rsPort int, directives string) *caddyNode {
	t.Helper()
	return startNode(t, "node", siteCaddyfile("", `
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		`+directives+`
	}
	respond /health 200`), map[string]string{"REDIS_PORT": strconv.Itoa(rsPort)})
}

func startNodes(t *testing.T, n int, caddyfile string, rs *redisServer) []*caddyNode {
	t.Helper()
	nodes := make([]*caddyNode, n)
	for i := range nodes {
		nodes[i] = startNode(t, fmt.Sprintf("node%d", i+1), caddyfile, map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
	}
	return nodes
}

// withExtraRoute is the example Caddyfile with one more route, which leaves
// its redis_ws handlers unchanged.
func withExtraRoute(t *testing.T, path string) string {
	return strings.Replace(exampleCaddyfile(t), "respond /health 200", "respond /health 200\n\trespond "+path+" 204", 1)
}

const (
	nodeCaddyfile     = "examples/cluster/node.caddyfile"
	balancerCaddyfile = "examples/cluster/lb.caddyfile"
)

func readExample(t *testing.T, path string) string {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(src)
}

// startExampleNode runs examples/cluster/node.caddyfile as run.sh does. The
// harness runs Caddy in a temporary directory, so the page's directory is
// given as an absolute CHAT_ROOT (run.sh passes it too).
func startExampleNode(t *testing.T, name string, rs *redisServer, env map[string]string) *caddyNode {
	t.Helper()
	root, err := filepath.Abs("examples/chat")
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port), "CHAT_ROOT": root}
	for k, v := range env {
		all[k] = v
	}
	return startNode(t, name, readExample(t, nodeCaddyfile), all)
}

// startBalancerFirst runs node1 of the example and its balancer, which
// already knows node2's address (returned): clients go to node1 until node2
// runs there and the balancer's health check finds it.
func startBalancerFirst(t *testing.T, rs *redisServer) (node1, lb *caddyNode, port2 int) {
	t.Helper()
	node1 = startExampleNode(t, "node1", rs, nil)
	port2 = freePort(t)
	lb = startNode(t, "lb", readExample(t, balancerCaddyfile), map[string]string{
		"NODE1": fmt.Sprintf("127.0.0.1:%d", node1.Port),
		"NODE2": fmt.Sprintf("127.0.0.1:%d", port2),
	})
	return node1, lb, port2
}

// startExampleBalancer runs examples/cluster/lb.caddyfile in front of the nodes.
func startExampleBalancer(t *testing.T, node1, node2 *caddyNode) *caddyNode {
	t.Helper()
	return startNode(t, "lb", readExample(t, balancerCaddyfile), map[string]string{
		"NODE1": fmt.Sprintf("127.0.0.1:%d", node1.Port),
		"NODE2": fmt.Sprintf("127.0.0.1:%d", node2.Port),
	})
}

// countLines counts the log lines that contain every one of the words.
func countLines(logs string, words ...string) int {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			n++
		}
	}
	return n
}

// onlyJSONLogs fails unless every line the node wrote is one of Caddy's
// JSON log entries: go-redis's own messages go through Caddy's logger too.
func onlyJSONLogs(t *testing.T, n *caddyNode) {
	t.Helper()
	for _, line := range strings.Split(n.Logs(), "\n") {
		if line != "" && !json.Valid([]byte(line)) {
			t.Fatalf("%s: a log line outside Caddy's logger: %q", n.Name, line)
		}
	}
}

// scrapeMetrics reads our metrics from the node's admin endpoint, keyed by
// name and labels as exposed ("caddy_redis_ws_connections{handler=\"chat\"}").
func scrapeMetrics(t *testing.T, n *caddyNode) map[string]float64 {
	t.Helper()
	status, body := httpGet(t, "http://"+n.adminAddr()+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", status)
	}
	out := make(map[string]float64)
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "caddy_redis_ws_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

var goroutineTotalLine = regexp.MustCompile(`goroutine profile: total (\d+)`)

// goroutineDump is the node's /debug/pprof/goroutine?debug=1: its goroutines
// grouped by stack, after a line with their total.
func (n *caddyNode) goroutineDump(t testing.TB) string {
	t.Helper()
	status, body := httpGet(t, fmt.Sprintf("http://%s/debug/pprof/goroutine?debug=1", n.adminAddr()))
	if status != http.StatusOK {
		t.Fatalf("%s: pprof goroutine: status %d: %s", n.Name, status, tail(body, 500))
	}
	return body
}

// Goroutines returns the number of the node's goroutines.
func (n *caddyNode) Goroutines(t testing.TB) int {
	t.Helper()
	return goroutineTotal(t, n.goroutineDump(t))
}

func goroutineTotal(t testing.TB, dump string) int {
	t.Helper()
	m := goroutineTotalLine.FindStringSubmatch(dump)
	if m == nil {
		t.Fatalf("pprof goroutine: no total in %q", tail(dump, 500))
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

// BaseGoroutines returns the number of goroutines of a node with no clients,
// once its Redis subscriber reads: that reader starts after the node
// answers /health, so a count taken before it would be one short of what
// the node runs when its clients are gone.
func (n *caddyNode) BaseGoroutines(t testing.TB) int {
	t.Helper()
	var dump string
	testkit.Eventually(t, wait, func() bool {
		dump = n.goroutineDump(t)
		return strings.Contains(dump, "bus.(*SubConn).receive")
	}, "%s: the Redis subscriber does not read:\n%v", n.Name, atFailure(func() any { return dump }))
	return goroutineTotal(t, dump)
}

// GoroutinesBackTo waits until the node runs no more than base goroutines
// (connections and their writers ended); failing, it shows them.
func (n *caddyNode) GoroutinesBackTo(t testing.TB, base int) {
	t.Helper()
	var dump string
	testkit.Eventually(t, wait, func() bool {
		dump = n.goroutineDump(t)
		return goroutineTotal(t, dump) <= base
	}, "goroutines did not go back to %d:\n%v", base, atFailure(func() any { return dump }))
}
