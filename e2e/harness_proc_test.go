package e2e

// The child processes of the harness (redis-server, caddy) and their
// output: every line goes to t.Logf and is kept, and a data race report of
// a -race binary is noticed.

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

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
