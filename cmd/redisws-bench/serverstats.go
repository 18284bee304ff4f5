package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The servers' cost as the tool sees it from outside: resident memory from
// /proc/PID/status, CPU time from /proc/PID/stat, goroutines from the admin
// endpoint's pprof.

// readRSSKB returns VmRSS of pid in KiB.
func readRSSKB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// sumRSSKB sums VmRSS over pids; -1 when pids is empty or one is unreadable.
func sumRSSKB(pids []int) int64 {
	if len(pids) == 0 {
		return -1
	}
	var sum int64
	for _, p := range pids {
		kb, err := readRSSKB(p)
		if err != nil {
			return -1
		}
		sum += kb
	}
	return sum
}

// settleRSS polls the summed RSS every 250 ms until three consecutive
// readings lie within 1% of each other, or max has elapsed.
func settleRSS(pids []int, max time.Duration) int64 {
	if len(pids) == 0 {
		return -1
	}
	deadline := time.Now().Add(max)
	prev := sumRSSKB(pids)
	stable := 0
	for i := 0; i < 100 && time.Now().Before(deadline); i++ {
		time.Sleep(250 * time.Millisecond)
		cur := sumRSSKB(pids)
		if prev > 0 && cur > 0 && absInt64(cur-prev)*100 <= prev {
			stable++
			if stable >= 2 {
				return cur
			}
		} else {
			stable = 0
		}
		prev = cur
	}
	return prev
}

func absInt64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// httpClient reads the admin endpoints: loopback only, never through a proxy.
var httpClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{DialContext: loopbackDialer.DialContext, Proxy: nil},
}

// goroutines sums "goroutine profile: total N" over admin endpoints; -1 on any failure.
func goroutines(admin []string) int64 {
	if len(admin) == 0 {
		return -1
	}
	var sum int64
	for _, a := range admin {
		resp, err := httpClient.Get(strings.TrimRight(a, "/") + "/debug/pprof/goroutine?debug=1")
		if err != nil {
			return -1
		}
		line, _ := bufio.NewReader(io.LimitReader(resp.Body, 4096)).ReadString('\n')
		resp.Body.Close()
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, "goroutine profile: total ")
		if !ok {
			return -1
		}
		v, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
		if err != nil {
			return -1
		}
		sum += v
	}
	return sum
}

// userHZ is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100 on Linux).
const userHZ = 100

// cpuTicks returns utime+stime of each process (0 where it cannot be read).
func cpuTicks(pids []int) []int64 {
	out := make([]int64, len(pids))
	for i, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// the fields after the ")" that ends the command name: utime is the 12th, stime the 13th
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			out[i] = u + s
		}
	}
	return out
}

// selfCPU is the CPU time (user and system) this process used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fanoutLatency sums the nodes' caddy_redis_ws_fanout_latency_seconds
// histograms (Redis receipt to the write of a batch, observed per batch
// for its oldest message) over the admin endpoints' /metrics; ok is false
// on any failure.
func fanoutLatency(admin []string) (sum, count float64, ok bool) {
	if len(admin) == 0 {
		return 0, 0, false
	}
	for _, a := range admin {
		resp, err := httpClient.Get(strings.TrimRight(a, "/") + "/metrics")
		if err != nil {
			return 0, 0, false
		}
		sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
		seen := 0
		for sc.Scan() {
			name, val, _ := strings.Cut(sc.Text(), " ")
			v, err := strconv.ParseFloat(val, 64)
			switch {
			case err != nil:
			case name == "caddy_redis_ws_fanout_latency_seconds_sum":
				sum += v
				seen++
			case name == "caddy_redis_ws_fanout_latency_seconds_count":
				count += v
				seen++
			}
		}
		resp.Body.Close()
		if seen != 2 {
			return 0, 0, false
		}
	}
	return sum, count, true
}

// writeSyscalls returns syscw of each process from /proc/PID/io: the write
// system calls it made so far: write, writev, pwrite on any file or socket
// (Go writes a TCP connection with write and writev; the kernel does not
// count sendmsg here); -1 where it cannot be read.
func writeSyscalls(pids []int) []int64 {
	out := make([]int64, len(pids))
	for i, pid := range pids {
		out[i] = -1
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "syscw:"); ok {
				if v, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64); err == nil {
					out[i] = v
				}
			}
		}
	}
	return out
}
