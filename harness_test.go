package redisws

// Integration-test harness: real redis-server processes, real Caddy processes
// built from ./cmd/caddy with -race, real WebSocket clients (gorilla), and a
// go-redis client for assertions. Everything is on loopback, every wait is a
// poll with a deadline, and everything is torn down through t.Cleanup so that
// goleak (TestMain) sees no goroutine of the harness left behind.
//
// Linux only (Pdeathsig makes sure no redis-server/caddy outlives a killed
// test binary).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/goleak"
)

// ---------------------------------------------------------------------------
// TestMain, build of the Caddy binary
// ---------------------------------------------------------------------------

func TestMain(m *testing.M) {
	// goleak checks for leaked goroutines after a successful run; the
	// Cleanup option lets us remove the build directory before exiting.
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		removeCaddyBuildDir()
		os.Exit(code)
	}))
}

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

// ---------------------------------------------------------------------------
// small helpers
// ---------------------------------------------------------------------------

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

// eventually polls cond every 20ms until it returns true or timeout elapses;
// then it fails the test with the given message.
func eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("eventually (after %s): "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

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

// ---------------------------------------------------------------------------
// processes and their output
// ---------------------------------------------------------------------------

// logSink splits a process's output into lines, logs each line with a
// prefix through t.Logf, keeps everything in memory, and notices data races.
type logSink struct {
	t      testing.TB
	prefix string

	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte
	quiet   bool // set once the owner's cleanup is over: no t.Logf after that

	raced atomic.Bool
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	s.partial = append(s.partial, p...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		s.line(string(s.partial[:i]))
		s.partial = s.partial[i+1:]
	}
	if len(s.partial) == 0 {
		s.partial = nil
	}
	return len(p), nil
}

// line must be called with s.mu held.
func (s *logSink) line(l string) {
	if strings.Contains(l, "WARNING: DATA RACE") {
		s.raced.Store(true)
	}
	if !s.quiet {
		s.t.Logf("%s: %s", s.prefix, l)
	}
}

func (s *logSink) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.partial) > 0 {
		s.line(string(s.partial))
		s.partial = nil
	}
}

func (s *logSink) silence() {
	s.mu.Lock()
	s.quiet = true
	s.mu.Unlock()
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// proc is one running child process. exited is closed after the process
// has exited and all of its output went through the sink.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // result of Wait; read only after exited is closed
}

func launch(sink *logSink, dir, path string, args, env []string) (*proc, error) {
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = sink
	cmd.Stderr = sink
	cmd.WaitDelay = 10 * time.Second // bound the output copy after exit
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		sink.flush()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits (bounded) for the exit.
func (p *proc) kill() error {
	if p.done() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
		return nil
	case <-time.After(20 * time.Second):
		return fmt.Errorf("pid %d did not exit within 20s after SIGKILL", p.cmd.Process.Pid)
	}
}

func exitDesc(p *proc) string {
	if !p.done() {
		return "still running"
	}
	if p.err == nil {
		return "exit status 0"
	}
	return p.err.Error()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// ---------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------

type redisServer struct {
	Port int
	Addr string // "127.0.0.1:port"

	args []string // the full argument list (port, bind, … , extra)
	dir  string
	sink *logSink

	mu   sync.Mutex
	proc *proc
}

// startRedis starts a redis-server on a free loopback port (never 6379) and
// waits until it answers PING. Extra arguments go after the defaults.
func startRedis(t testing.TB, extraArgs ...string) *redisServer {
	t.Helper()
	var lastErr error
	for range 3 {
		r, err := newRedis(t, freePort(t), extraArgs)
		if err == nil {
			return r
		}
		lastErr = err
		if !strings.Contains(err.Error(), "in use") {
			break
		}
		t.Logf("redis: port taken, retrying on another port: %v", err)
	}
	t.Fatalf("startRedis: %v", lastErr)
	return nil
}

// startRedisOnPort is startRedis on a given port.
func startRedisOnPort(t testing.TB, port int, extraArgs ...string) *redisServer {
	t.Helper()
	r, err := newRedis(t, port, extraArgs)
	if err != nil {
		t.Fatalf("startRedisOnPort(%d): %v", port, err)
	}
	return r
}

func newRedis(t testing.TB, port int, extraArgs []string) (*redisServer, error) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not on PATH (these integration tests need a real Redis; install it, e.g. apt-get install redis-server): %v", err)
	}
	dir := t.TempDir()
	r := &redisServer{
		Port: port,
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		dir:  dir,
		sink: &logSink{t: t, prefix: fmt.Sprintf("redis:%d", port)},
	}
	r.args = append([]string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
	}, extraArgs...)
	if err := r.start(); err != nil {
		r.sink.silence()
		return nil, err
	}
	t.Cleanup(func() {
		if err := r.kill(); err != nil {
			t.Errorf("redis:%d cleanup: %v", r.Port, err)
		}
		r.sink.silence()
	})
	return r, nil
}

// start launches the process and waits for PING (10s); on failure the
// process is gone again.
func (r *redisServer) start() error {
	p, err := launch(r.sink, r.dir, "redis-server", r.args, os.Environ())
	if err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	r.mu.Lock()
	r.proc = p
	r.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if p.done() {
			return fmt.Errorf("redis-server on port %d exited during startup (%s):\n%s", r.Port, exitDesc(p), tail(r.sink.String(), 4000))
		}
		if redisPing(r.Addr) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			_ = p.kill()
			return fmt.Errorf("redis-server on port %d did not answer PING within 10s:\n%s", r.Port, tail(r.sink.String(), 4000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// redisPing sends a raw RESP PING and expects +PONG.
func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

func (r *redisServer) kill() error {
	r.mu.Lock()
	p := r.proc
	r.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.kill()
}

// Kill sends SIGKILL and waits for the exit. Idempotent.
func (r *redisServer) Kill(t testing.TB) {
	t.Helper()
	if err := r.kill(); err != nil {
		t.Fatalf("redis:%d: %v", r.Port, err)
	}
}

// Restart kills the server and starts it again on the same port with the
// same arguments (empty: nothing is persisted), waiting for PING.
func (r *redisServer) Restart(t testing.TB) {
	t.Helper()
	r.Kill(t)
	if err := r.start(); err != nil {
		t.Fatalf("redis:%d restart: %v", r.Port, err)
	}
}

// Signal sends sig (e.g. SIGSTOP, SIGCONT) to the server process.
func (r *redisServer) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	r.mu.Lock()
	p := r.proc
	r.mu.Unlock()
	if p == nil || p.done() {
		t.Fatalf("redis:%d: not running", r.Port)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("redis:%d: %v", r.Port, err)
	}
}

// Running reports whether the process is running.
func (r *redisServer) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc != nil && !r.proc.done()
}

// Logs returns the server's output so far (across restarts).
func (r *redisServer) Logs() string { return r.sink.String() }

// URL returns "redis://127.0.0.1:P".
func (r *redisServer) URL() string { return "redis://" + r.Addr }

// Client returns a go-redis client for assertions, closed at cleanup.
func (r *redisServer) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:            r.Addr,
		DialTimeout:     2 * time.Second,
		ReadTimeout:     5 * time.Second,
		WriteTimeout:    5 * time.Second,
		DisableIdentity: true, // no CLIENT SETINFO (Redis 7.0 does not know it)
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// ---------------------------------------------------------------------------
// Caddy
// ---------------------------------------------------------------------------

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
// then the data-race check.
func (n *caddyNode) cleanup(t testing.TB) {
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
	if n.proc.done() {
		t.Logf("%s: process ended: %s", n.Name, exitDesc(n.proc))
	}
	n.sink.silence()
	if n.sink.raced.Load() {
		t.Errorf("%s: DATA RACE reported by the -race caddy binary; output:\n%s", n.Name, raceReports(n.Logs()))
	}
}

// raceReports extracts the race reports (from "WARNING: DATA RACE" to the
// closing "==================") from a process's output.
func raceReports(logs string) string {
	var b strings.Builder
	in := false
	for _, l := range strings.Split(logs, "\n") {
		switch {
		case strings.Contains(l, "WARNING: DATA RACE"):
			in = true
			b.WriteString("==================\n")
		case in && strings.HasPrefix(l, "=================="):
			in = false
			b.WriteString(l + "\n")
			continue
		}
		if in {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
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

// Reload writes a new config file and runs `caddy reload --config f
// [--adapter caddyfile] --address 127.0.0.1:ADMIN` with the node's env, so
// {$PORT} etc. resolve as at start. A JSON node is reloaded with JSON.
// Caddy skips a reload whose config is identical to the running one.
func (n *caddyNode) Reload(t testing.TB, config string) {
	t.Helper()
	file := n.writeConfig(t, config)
	args := []string{"reload", "--config", file, "--address", n.adminAddr()}
	if n.adapter != "" {
		args = append(args, "--adapter", n.adapter)
	}
	if out, err := n.runCLI(t, args...); err != nil {
		t.Fatalf("%s: caddy reload failed: %v\n%s", n.Name, err, out)
	}
}

func (n *caddyNode) adminAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.AdminPort))
}

// Stop runs `caddy stop --address 127.0.0.1:ADMIN` and waits (20s) for the
// process to exit.
func (n *caddyNode) Stop(t testing.TB) {
	t.Helper()
	if out, err := n.runCLI(t, "stop", "--address", n.adminAddr()); err != nil {
		t.Fatalf("%s: caddy stop failed: %v\n%s", n.Name, err, out)
	}
	select {
	case <-n.proc.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: process still running 20s after `caddy stop`", n.Name)
	}
}

// Kill sends SIGKILL and waits for the exit.
func (n *caddyNode) Kill(t testing.TB) {
	t.Helper()
	if err := n.proc.kill(); err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
}

// Exited is closed when the process has exited (and its output is in Logs).
func (n *caddyNode) Exited() <-chan struct{} { return n.proc.exited }

// Signal sends sig to the node's process.
func (n *caddyNode) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := n.proc.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
}

// Logs returns all output of the process so far.
func (n *caddyNode) Logs() string { return n.sink.String() }

// URL returns "http://127.0.0.1:PORT"+path.
func (n *caddyNode) URL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", n.Port, path)
}

// WSURL returns "ws://127.0.0.1:PORT"+path.
func (n *caddyNode) WSURL(path string) string {
	return fmt.Sprintf("ws://127.0.0.1:%d%s", n.Port, path)
}

var goroutineTotal = regexp.MustCompile(`goroutine profile: total (\d+)`)

// Goroutines returns the node's goroutine count from the admin endpoint's
// /debug/pprof/goroutine?debug=1.
func (n *caddyNode) Goroutines(t testing.TB) int {
	t.Helper()
	status, body := httpGet(t, fmt.Sprintf("http://%s/debug/pprof/goroutine?debug=1", n.adminAddr()))
	if status != http.StatusOK {
		t.Fatalf("%s: pprof goroutine: status %d: %s", n.Name, status, tail(body, 500))
	}
	m := goroutineTotal.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("%s: pprof goroutine: no total in %q", n.Name, tail(body, 500))
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

// ---------------------------------------------------------------------------
// WebSocket clients
// ---------------------------------------------------------------------------

type wsMessage struct {
	Type int
	Data []byte
}

func (m wsMessage) String() string {
	if m.Type == websocket.TextMessage {
		return fmt.Sprintf("text %q", m.Data)
	}
	return fmt.Sprintf("type %d %q", m.Type, m.Data)
}

// maxQueued bounds the messages a client keeps unread.
const maxQueued = 1_000_000

type wsClient struct {
	Conn *websocket.Conn
	URL  string

	wmu sync.Mutex // serialises data writes

	mu       sync.Mutex
	queue    []wsMessage
	received int
	overflow bool
	notify   chan struct{} // cap 1: something was queued

	done      chan struct{} // closed when the reader has ended
	closeErr  error         // valid after done
	closeCode int           // valid after done
	closedAt  time.Time     // valid after done

	closeOnce sync.Once
}

var wsDialer = &websocket.Dialer{
	Proxy:            nil, // loopback only
	HandshakeTimeout: 10 * time.Second,
}

// tryDialWS dials without failing the test. On a refused handshake it
// returns websocket.ErrBadHandshake and the response; its Body holds (up to
// 1 KiB of) the response body and is readable by the caller.
func tryDialWS(t testing.TB, url string, header http.Header) (*wsClient, *http.Response, error) {
	t.Helper()
	conn, resp, err := wsDialer.Dial(url, header)
	if err != nil {
		return nil, resp, err
	}
	c := &wsClient{
		Conn:   conn,
		URL:    url,
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	go c.readLoop()
	t.Cleanup(c.Close)
	return c, resp, nil
}

// dialWS dials or fails the test with the HTTP status and body.
func dialWS(t testing.TB, url string, header http.Header) *wsClient {
	t.Helper()
	c, resp, err := tryDialWS(t, url, header)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(resp.Body)
			t.Fatalf("dial %s: %v (HTTP %s, body %q)", url, err, resp.Status, body)
		}
		t.Fatalf("dial %s: %v", url, err)
	}
	return c
}

func (c *wsClient) readLoop() {
	for {
		typ, data, err := c.Conn.ReadMessage()
		if err != nil {
			code := -1
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
				code = ce.Code
			}
			c.mu.Lock()
			c.closeErr, c.closeCode, c.closedAt = err, code, time.Now()
			c.mu.Unlock()
			close(c.done)
			return
		}
		c.mu.Lock()
		c.received++
		if len(c.queue) < maxQueued {
			c.queue = append(c.queue, wsMessage{Type: typ, Data: data})
		} else {
			c.overflow = true
		}
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
}

// Received returns how many messages arrived so far (read or not).
func (c *wsClient) Received() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.received
}

type popResult int

const (
	popMessage popResult = iota
	popTimeout
	popClosed
)

// pop takes the next message, waiting until deadline.
func (c *wsClient) pop(deadline time.Time) (wsMessage, popResult) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		c.mu.Lock()
		if len(c.queue) > 0 {
			m := c.queue[0]
			c.queue[0] = wsMessage{}
			c.queue = c.queue[1:]
			if len(c.queue) == 0 {
				c.queue = nil
			}
			c.mu.Unlock()
			return m, popMessage
		}
		c.mu.Unlock()
		select {
		case <-c.done:
			// the reader queued everything before closing done
			c.mu.Lock()
			empty := len(c.queue) == 0
			c.mu.Unlock()
			if empty {
				return wsMessage{}, popClosed
			}
		case <-c.notify:
		case <-timer.C:
			return wsMessage{}, popTimeout
		}
	}
}

func (c *wsClient) closeDesc() string {
	select {
	case <-c.done:
		return fmt.Sprintf("code %d, %v", c.closeCode, c.closeErr)
	default:
		return "open"
	}
}

func (c *wsClient) checkOverflow(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	o := c.overflow
	c.mu.Unlock()
	if o {
		t.Fatalf("ws %s: more than %d unread messages; some were dropped by the test client", c.URL, maxQueued)
	}
}

// Send writes one message (safe from several goroutines) or fails the test.
// From goroutines other than the test's, prefer TrySend.
func (c *wsClient) Send(t testing.TB, typ int, data []byte) {
	t.Helper()
	if err := c.TrySend(typ, data); err != nil {
		t.Fatalf("ws %s: send: %v", c.URL, err)
	}
}

// TrySend writes one message (10s write deadline) and returns the error.
func (c *wsClient) TrySend(typ int, data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.Conn.WriteMessage(typ, data)
}

// SendText sends a text message.
func (c *wsClient) SendText(t testing.TB, s string) {
	t.Helper()
	c.Send(t, websocket.TextMessage, []byte(s))
}

// Next returns the next message; it fails on timeout or on a closed
// connection with nothing left to read.
func (c *wsClient) Next(t testing.TB, timeout time.Duration) wsMessage {
	t.Helper()
	c.checkOverflow(t)
	m, r := c.pop(time.Now().Add(timeout))
	switch r {
	case popTimeout:
		t.Fatalf("ws %s: no message within %s", c.URL, timeout)
	case popClosed:
		t.Fatalf("ws %s: connection closed while waiting for a message (%s)", c.URL, c.closeDesc())
	}
	return m
}

// Collect returns the next n messages, which must all arrive within timeout.
// Messages beyond n stay queued.
func (c *wsClient) Collect(t testing.TB, n int, timeout time.Duration) []wsMessage {
	t.Helper()
	c.checkOverflow(t)
	deadline := time.Now().Add(timeout)
	out := make([]wsMessage, 0, n)
	for len(out) < n {
		m, r := c.pop(deadline)
		switch r {
		case popTimeout:
			t.Fatalf("ws %s: %d of %d messages arrived within %s", c.URL, len(out), n, timeout)
		case popClosed:
			t.Fatalf("ws %s: %d of %d messages arrived before the connection closed (%s)", c.URL, len(out), n, c.closeDesc())
		}
		out = append(out, m)
	}
	return out
}

// ExpectNothing fails if a message arrives within the window (the one fixed
// wait allowed: asserting absence). A close during the window is not a
// message; it is logged.
func (c *wsClient) ExpectNothing(t testing.TB, within time.Duration) {
	t.Helper()
	m, r := c.pop(time.Now().Add(within))
	switch r {
	case popMessage:
		t.Fatalf("ws %s: expected no message within %s, got %s", c.URL, within, m)
	case popClosed:
		t.Logf("ws %s: closed during ExpectNothing (%s)", c.URL, c.closeDesc())
	}
}

// WaitClosed waits until the reader saw the connection end. code is the
// close frame's code, or -1 for an end without a close frame (gorilla's
// 1006 included); at is when the end was observed.
func (c *wsClient) WaitClosed(t testing.TB, timeout time.Duration) (code int, at time.Time) {
	t.Helper()
	select {
	case <-c.done:
		return c.closeCode, c.closedAt
	case <-time.After(timeout):
		t.Fatalf("ws %s: still open after %s", c.URL, timeout)
		return 0, time.Time{}
	}
}

// Closed reports whether the reader saw the connection end.
func (c *wsClient) Closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Close sends a close frame (1000), waits up to 2s for the server's answer,
// then closes the TCP connection and waits for the reader. Idempotent.
func (c *wsClient) Close() {
	c.closeOnce.Do(func() {
		if !c.Closed() {
			_ = c.Conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
				time.Now().Add(time.Second))
			select {
			case <-c.done:
			case <-time.After(2 * time.Second):
			}
		}
		_ = c.Conn.Close()
		<-c.done
	})
}

// ---------------------------------------------------------------------------
// self-test (no Caddy)
// ---------------------------------------------------------------------------

func TestHarnessRedis(t *testing.T) {
	ctx := context.Background()
	a := startRedis(t)
	b := startRedis(t)
	if a.Port == b.Port || a.Port == 6379 || b.Port == 6379 {
		t.Fatalf("bad ports %d %d", a.Port, b.Port)
	}
	if a.URL() != "redis://127.0.0.1:"+strconv.Itoa(a.Port) {
		t.Fatalf("URL %q", a.URL())
	}
	ca, cb := a.Client(t), b.Client(t)
	for _, c := range []*redis.Client{ca, cb} {
		if got, err := c.Ping(ctx).Result(); err != nil || got != "PONG" {
			t.Fatalf("PING: %q %v", got, err)
		}
	}
	// the two servers are distinct
	if err := ca.Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := cb.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("b sees a's key: %d %v", n, err)
	}

	// Pub/Sub through the assertion client works
	sub := cb.Subscribe(ctx, "harness")
	if _, err := sub.ReceiveTimeout(ctx, 5*time.Second); err != nil { // subscription confirmation
		t.Fatal(err)
	}
	if n, err := cb.Publish(ctx, "harness", "hi").Result(); err != nil || n != 1 {
		t.Fatalf("PUBLISH: %d %v", n, err)
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil || msg.Payload != "hi" {
		t.Fatalf("message: %v %v", msg, err)
	}
	_ = sub.Close()

	// Kill: the port stops answering; Kill is idempotent
	a.Kill(t)
	a.Kill(t)
	if a.Running() {
		t.Fatal("still running after Kill")
	}
	if err := redisPing(a.Addr); err == nil {
		t.Fatal("PING answered after Kill")
	}
	// Restart: same port, empty data, the old client reconnects by itself
	a.Restart(t)
	eventually(t, 10*time.Second, func() bool { return ca.Ping(ctx).Err() == nil }, "client did not reconnect after restart")
	if n, err := ca.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("data survived restart: %d %v", n, err)
	}

	// startRedisOnPort on a port chosen earlier, and extra args
	p := freePort(t)
	c := startRedisOnPort(t, p, "--maxmemory", "10mb")
	if got, err := c.Client(t).ConfigGet(ctx, "maxmemory").Result(); err != nil || got["maxmemory"] != "10485760" {
		t.Fatalf("extra args: %v %v", got, err)
	}
	c.Restart(t)
	if got, err := c.Client(t).ConfigGet(ctx, "maxmemory").Result(); err != nil || got["maxmemory"] != "10485760" {
		t.Fatalf("extra args after restart: %v %v", got, err)
	}
	if !strings.Contains(c.Logs(), "Ready to accept connections") {
		t.Fatalf("logs: %s", c.Logs())
	}
}
