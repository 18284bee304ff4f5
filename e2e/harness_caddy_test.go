package e2e

// Caddy: the binary built once with -race from ./cmd/caddy, and nodes run
// from a Caddyfile or JSON config on free ports, reloaded and stopped with
// the caddy CLI through their admin endpoint.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var caddyBuild struct {
	once sync.Once
	dir  string
	path string
	out  []byte
	err  error
	took time.Duration
}

func removeCaddyBuildDir() {
	if caddyBuild.dir != "" {
		_ = os.RemoveAll(caddyBuild.dir)
	}
}

// caddyBinary returns the path of a Caddy binary with this module, built
// once per test binary with -race from ./cmd/caddy (the test's working
// directory is the module root). CADDY_BIN, when set, is used instead.
// The -race build takes minutes when the race build cache is cold: run
// with a generous -timeout or set CADDY_BIN.
func caddyBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CADDY_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatalf("CADDY_BIN=%q: %v", p, err)
		}
		if st, err := os.Stat(abs); err != nil || st.IsDir() {
			t.Fatalf("CADDY_BIN=%q is not a usable file: %v", p, err)
		}
		return abs
	}
	caddyBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", fmt.Sprintf("redisws-caddy-%d-", os.Getpid()))
		if err != nil {
			caddyBuild.err = err
			return
		}
		caddyBuild.dir = dir
		caddyBuild.path = filepath.Join(dir, "caddy")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		start := time.Now()
		cmd := exec.CommandContext(ctx, "go", "build", "-race", "-o", caddyBuild.path, "./cmd/caddy")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		caddyBuild.out, caddyBuild.err = cmd.CombinedOutput()
		caddyBuild.took = time.Since(start)
		if caddyBuild.err == nil {
			t.Logf("built %s with -race in %s", caddyBuild.path, caddyBuild.took.Round(time.Second))
		}
	})
	if caddyBuild.err != nil {
		t.Fatalf("building caddy (go build -race -o <tmp> ./cmd/caddy) failed: %v\n%s", caddyBuild.err, caddyBuild.out)
	}
	return caddyBuild.path
}

type caddyNode struct {
	Name            string
	Port, AdminPort int

	bin     string
	dir     string
	adapter string   // "caddyfile" or "" (JSON)
	env     []string // full environment of the node (and of reload/stop)
	sink    *logSink
	proc    *proc
	reloads atomic.Int64
}

var jsonNodes atomic.Int64

// startNode writes caddyfile to a temp file and runs
// `caddy run --config <file> --adapter caddyfile` with PORT and ADMIN_PORT
// (free ports unless given in env), the env map and os.Environ(). It waits
// (60s) until GET /config/ on the admin port answers 200 and PORT accepts
// TCP. Output goes to t.Logf ("name: line") and to Logs(). A
// "WARNING: DATA RACE" in the output fails the test at cleanup. Cleanup:
// SIGTERM, 10s, SIGKILL.
func startNode(t testing.TB, name, caddyfile string, env map[string]string) *caddyNode {
	t.Helper()
	return startCaddy(t, name, caddyfile, "caddyfile", env)
}

// startNodeJSON is startNode with a JSON config (no adapter). JSON has no
// {$VAR}; use the {env.PORT} / {env.ADMIN_PORT} placeholders, which Caddy
// replaces in "listen" addresses of servers and of the admin endpoint.
func startNodeJSON(t testing.TB, jsonConfig string, env map[string]string) *caddyNode {
	t.Helper()
	return startCaddy(t, fmt.Sprintf("caddy-json-%d", jsonNodes.Add(1)), jsonConfig, "", env)
}

func startCaddy(t testing.TB, name, config, adapter string, env map[string]string) *caddyNode {
	t.Helper()
	bin := caddyBinary(t)
	_, fixedPort := env["PORT"]
	_, fixedAdmin := env["ADMIN_PORT"]
	var lastErr error
	for attempt := range 3 {
		n, err := tryStartCaddy(t, bin, name, config, adapter, env)
		if err == nil {
			return n
		}
		lastErr = err
		if (fixedPort && fixedAdmin) || !strings.Contains(err.Error(), "address already in use") {
			break
		}
		t.Logf("%s: a port was taken, retrying with other ports (attempt %d): %v", name, attempt+1, err)
	}
	t.Fatalf("starting caddy node %s: %v", name, lastErr)
	return nil
}

func envPort(t testing.TB, env map[string]string, key string) int {
	t.Helper()
	v, ok := env[key]
	if !ok {
		return freePort(t)
	}
	p, err := strconv.Atoi(v)
	if err != nil || p <= 0 || p > 65535 {
		t.Fatalf("env %s=%q is not a port", key, v)
	}
	return p
}

func tryStartCaddy(t testing.TB, bin, name, config, adapter string, env map[string]string) (*caddyNode, error) {
	t.Helper()
	dir := t.TempDir()
	n := &caddyNode{
		Name:      name,
		Port:      envPort(t, env, "PORT"),
		AdminPort: envPort(t, env, "ADMIN_PORT"),
		bin:       bin,
		dir:       dir,
		adapter:   adapter,
		sink:      &logSink{t: t, prefix: name},
	}
	n.env = append(os.Environ(),
		// keep autosave.json, storage etc. per node
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"PORT="+strconv.Itoa(n.Port),
		"ADMIN_PORT="+strconv.Itoa(n.AdminPort),
	)
	for k, v := range env { // later duplicates win in os/exec
		n.env = append(n.env, k+"="+v)
	}

	file := n.writeConfig(t, config)
	args := []string{"run", "--config", file}
	if adapter != "" {
		args = append(args, "--adapter", adapter)
	}
	p, err := launch(n.sink, dir, bin, args, n.env)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	n.proc = p
	t.Cleanup(func() { n.cleanup(t) })

	deadline := time.Now().Add(60 * time.Second)
	for {
		if p.done() {
			return nil, fmt.Errorf("caddy exited during startup (%s):\n%s", exitDesc(p), tail(n.Logs(), 6000))
		}
		if n.ready() {
			return n, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("caddy not ready within 60s (admin 127.0.0.1:%d /config/ → 200 and site port %d accepting TCP):\n%s",
				n.AdminPort, n.Port, tail(n.Logs(), 6000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *caddyNode) writeConfig(t testing.TB, config string) string {
	t.Helper()
	ext := "Caddyfile"
	if n.adapter == "" {
		ext = "json"
	}
	file := filepath.Join(n.dir, fmt.Sprintf("config-%d.%s", n.reloads.Add(1), ext))
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatalf("%s: writing config: %v", n.Name, err)
	}
	return file
}

func (n *caddyNode) ready() bool {
	resp, err := noKeepAliveClient.Get(fmt.Sprintf("http://127.0.0.1:%d/config/", n.AdminPort))
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(n.Port)), time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// cleanup: SIGTERM (Caddy stops its apps and exits), 10s, then SIGKILL;
// then the data-race check. A failed test's output is not extended by the
// shutdown lines: its failure stays near the end, where CI shows it.
func (n *caddyNode) cleanup(t testing.TB) {
	if t.Failed() {
		n.sink.silence()
	}
	if !n.proc.done() {
		_ = n.proc.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.proc.exited:
		case <-time.After(10 * time.Second):
			t.Logf("%s: still running 10s after SIGTERM; SIGKILL", n.Name)
			if err := n.proc.kill(); err != nil {
				t.Errorf("%s: %v", n.Name, err)
			}
		}
	}
	if n.proc.done() && !t.Failed() {
		t.Logf("%s: process ended: %s", n.Name, exitDesc(n.proc))
	}
	n.sink.silence()
	if n.sink.raced.Load() {
		t.Errorf("%s: DATA RACE reported by the -race caddy binary; output:\n%s", n.Name, raceReports(n.Logs()))
	}
}

// runCLI runs `caddy <args>` with the node's environment, bounded in time.
func (n *caddyNode) runCLI(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.bin, args...)
	cmd.Dir = n.dir
	// A -race binary sleeps 1s at exit by default (GORACE atexit_sleep_ms)
	// so that late race reports make it out; for these short CLI runs that
	// only costs time.
	cmd.Env = append(append([]string(nil), n.env...), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if l != "" {
			t.Logf("%s [%s]: %s", n.Name, args[0], l)
		}
	}
	if bytes.Contains(out, []byte("WARNING: DATA RACE")) {
		t.Errorf("%s: DATA RACE in `caddy %s`:\n%s", n.Name, args[0], out)
	}
	return string(out), err
}
