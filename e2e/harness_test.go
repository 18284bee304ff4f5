package e2e

// Integration-test harness: real redis-server processes, real Caddy processes
// built from ./cmd/caddy with -race, real WebSocket clients (gorilla), and a
// go-redis client for assertions. Everything is on loopback, every wait is a
// poll with a deadline, and everything is torn down through t.Cleanup so that
// goleak (TestMain) sees no goroutine of the harness left behind.
//
// Linux only (Pdeathsig makes sure no redis-server/caddy outlives a killed
// test binary).
//
// This file holds what every kind of test uses; harness_proc_test.go runs
// child processes, harness_caddy_test.go the Caddy nodes (and
// harness_node_test.go what tests run on them and read back),
// harness_redis_test.go the redis-server processes, harness_tls_test.go,
// harness_topology_test.go and harness_relay_test.go the TLS, Sentinel,
// Cluster and relay set-ups, harness_ws_test.go the WebSocket clients,
// harness_browser_test.go headless Chromium.

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The process tests name files from the module root (./cmd/caddy,
	// examples/, testdata/, README.md, internal/bus/lua/): run from there.
	if err := os.Chdir(".."); err != nil {
		panic(err)
	}
	// goleak checks for leaked goroutines after a successful run; the
	// Cleanup option lets us remove the build directory before exiting.
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		removeCaddyBuildDir()
		os.Exit(code)
	}))
}

var usedPorts struct {
	mu sync.Mutex
	m  map[int]bool
}

// freePort returns a loopback TCP port that was free a moment ago. It never
// returns 6379 and never returns the same port twice in one test binary.
func freePort(t testing.TB) int {
	t.Helper()
	usedPorts.mu.Lock()
	defer usedPorts.mu.Unlock()
	if usedPorts.m == nil {
		usedPorts.m = map[int]bool{}
	}
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("freePort: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if port == 6379 || usedPorts.m[port] {
			continue
		}
		usedPorts.m[port] = true
		return port
	}
	t.Fatalf("freePort: no fresh port after 100 attempts")
	return 0
}

// atFailure is an argument of testkit.Eventually's message that is read when the
// message is made, not when Eventually is called: the last value seen.
type atFailure func() any

func (f atFailure) String() string { return fmt.Sprint(f()) }

// noKeepAliveClient is an HTTP client that keeps no idle connections (so no
// transport goroutines survive a test: goleak) and never uses a proxy.
var noKeepAliveClient = &http.Client{
	Timeout: 10 * time.Second,
	Transport: &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
	},
}

// httpGet does a GET with a client that leaves no idle connection behind.
// It fails the test on a transport error and returns status and body.
func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := noKeepAliveClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

const wait = testkit.Wait // deadline of every poll and receive

// Long versions of the soak and the drills run with these set, e.g.
// REDISWS_SOAK_CONNS=10000 REDISWS_SOAK_DURATION=3m REDISWS_DRILL_RELOADS=50;
// CI runs the short defaults.
func envInt(t *testing.T, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return n
	}
	return def
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return d
	}
	return def
}
