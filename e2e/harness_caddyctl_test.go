package e2e

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

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
