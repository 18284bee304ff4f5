package testkit

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis starts a bare redis-server (no persistence) on a free loopback
// port for an in-process test, stopped at cleanup, and returns its
// address once it answers. The process tests of e2e/ have a harness that
// restarts, fails over and clusters servers; this is the one server an
// in-process test needs.
func Redis(tb testing.TB) string {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		tb.Fatalf("redis-server is not on PATH (install it, e.g. apt-get install redis-server): %v", err)
	}
	for range 3 {
		port := FreePort(tb)
		cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", tb.TempDir())
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			tb.Fatalf("starting redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		tb.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
		addr := "127.0.0.1:" + strconv.Itoa(port)
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		deadline := time.Now().Add(Wait)
		for time.Now().Before(deadline) {
			select {
			case <-exited: // the port was taken meanwhile: another one
			default:
				if rdb.Ping(context.Background()).Err() != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				_ = rdb.Close()
				return addr
			}
			break
		}
		_ = rdb.Close()
	}
	tb.Fatal("redis-server did not start")
	return ""
}

// FreePort is a loopback TCP port that was free a moment ago, never 6379.
func FreePort(tb testing.TB) int {
	tb.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if port != 6379 {
			return port
		}
	}
}

// RaiseOpenFiles raises the soft limit of open files to the hard one (at
// least 65536 when the process may), for tests with many connections.
func RaiseOpenFiles(tb testing.TB) {
	tb.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		tb.Fatal(err)
	}
	want := syscall.Rlimit{Cur: max(lim.Max, 1<<16), Max: max(lim.Max, 1<<16)}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			tb.Fatal(err)
		}
	}
}
