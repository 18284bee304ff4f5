package e2e

// redis-server processes on free loopback ports (never 6379), which a test
// kills, restarts or stops (SIGSTOP); go-redis clients for assertions, and
// the assertions made through them (subscriber counts, the module's
// subscriber connections, PUBLISH).

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

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
	if err := r.Start(); err != nil {
		r.sink.silence()
		return nil, err
	}
	t.Cleanup(func() {
		if t.Failed() {
			r.sink.silence() // see caddyNode.cleanup
		}
		if err := r.kill(); err != nil {
			t.Errorf("redis:%d cleanup: %v", r.Port, err)
		}
		r.sink.silence()
	})
	return r, nil
}

// start launches the process and waits for PING (10s); on failure the
// process is gone again.
func (r *redisServer) Start() error {
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
	if err := r.Start(); err != nil {
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

// TestHarnessRedis checks the Redis part of the harness itself, without
// Caddy.
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
	testkit.Eventually(t, 10*time.Second, func() bool { return ca.Ping(ctx).Err() == nil }, "client did not reconnect after restart")
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
