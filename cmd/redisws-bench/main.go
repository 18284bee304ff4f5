// Command redisws-bench is a load tool for the redis_ws Caddy module.
//
// Modes:
//
//	fanout (default)  publishers send paced, stamped frames; subscribers on every
//	                  node measure delivery, loss, duplicates, order and latency.
//	                  -rooms N: URL templates with {room}, rooms r0..r(N-1), each
//	                  subscriber expects its room's messages only. -slow N: N more
//	                  subscribers that never read; the end reports whether the
//	                  server closed them.
//	publish           connections send frames as fast as they can; bench/publish.sh
//	                  counts what reaches Redis.
//	conns             opens idle connections and reports the servers' RSS per connection.
//	table             turns JSON result lines (files or stdin) into a Markdown table.
//
// The mode is the first argument or -mode. Only loopback targets are accepted.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

type config struct {
	mode        string
	urls        []string
	subs        int
	pubs        int
	rate        float64
	duration    time.Duration
	size        int
	drain       time.Duration
	settle      time.Duration
	connectRate float64
	jsonOnly    bool
	origin      string
	conns       int
	pids        []int
	admin       []string
	handshake   time.Duration
	rooms       int
	slow        int
	label       string
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	mode := "fanout"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		mode, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("redisws-bench", flag.ContinueOnError)
	var c config
	var urls, pids, admin string
	fs.StringVar(&c.mode, "mode", mode, "fanout | publish | conns | table (may also be given as the first argument)")
	fs.StringVar(&urls, "urls", "ws://127.0.0.1:8001/ws,ws://127.0.0.1:8002/ws", "comma-separated ws:// URLs of the nodes (loopback only)")
	fs.IntVar(&c.subs, "subs", 200, "fanout: subscriber connections, round-robin over -urls")
	fs.IntVar(&c.pubs, "pubs", 2, "fanout: publisher connections, round-robin over -urls (at least -rooms)")
	fs.IntVar(&c.rooms, "rooms", 0, "fanout: rooms r0..r(N-1); the -urls are templates with {room}, subscribers and publishers\n"+
		"are spread round-robin over rooms and nodes, each subscriber expects its room's messages (0: one shared channel)")
	fs.IntVar(&c.slow, "slow", 0, "fanout: extra subscriber connections that never read after the handshake (not in -subs);\n"+
		"after the drain each is read until the server's close or a short quiet time")
	fs.StringVar(&c.label, "label", "", "fanout: free text copied to the JSON line; table mode lists labelled runs in their own table")
	fs.Float64Var(&c.rate, "rate", 1000, "fanout: total messages per second over all publishers")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "fanout: send window")
	fs.IntVar(&c.size, "size", 64, fmt.Sprintf("fanout: payload bytes (>= %d, the header)", headerSize))
	fs.DurationVar(&c.drain, "drain", 5*time.Second, "fanout: longest wait after the last send for stragglers (ends early when all arrived)")
	fs.DurationVar(&c.settle, "settle", 500*time.Millisecond, "fanout: pause between the last connection and the first send")
	fs.Float64Var(&c.connectRate, "connect-rate", 500, "connections opened per second")
	fs.DurationVar(&c.handshake, "handshake-timeout", 10*time.Second, "timeout of one WebSocket handshake")
	fs.BoolVar(&c.jsonOnly, "json", false, "print only the JSON line (no summary on stderr)")
	fs.StringVar(&c.origin, "origin", "", "Origin header to send (none when empty)")
	fs.IntVar(&c.conns, "conns", 2000, "conns: idle connections to open")
	fs.StringVar(&pids, "pids", "", "comma-separated pids of the server processes (RSS from /proc/PID/status)")
	fs.StringVar(&admin, "admin", "", "comma-separated admin base URLs (http://127.0.0.1:2019) for goroutine counts via /debug/pprof")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 && c.mode != "table" {
		fmt.Fprintf(os.Stderr, "redisws-bench: unexpected arguments: %v\n", fs.Args())
		return 2
	}
	if c.mode == "table" {
		return tableMode(fs.Args())
	}
	var err error
	if c.urls, err = splitList(urls); err != nil || len(c.urls) == 0 {
		fmt.Fprintln(os.Stderr, "redisws-bench: -urls: need at least one URL")
		return 2
	}
	if c.mode != "fanout" && (c.rooms != 0 || c.slow != 0) {
		fmt.Fprintln(os.Stderr, "redisws-bench: -rooms and -slow are for fanout only")
		return 2
	}
	for _, u := range c.urls {
		if err := checkURLTemplate(u, c.rooms); err != nil {
			fmt.Fprintf(os.Stderr, "redisws-bench: %q: %v\n", u, err)
			return 2
		}
		if err := checkLoopbackURL(roomURL(u, 0), "ws", "wss"); err != nil {
			fmt.Fprintf(os.Stderr, "redisws-bench: refusing %q: %v\n", u, err)
			return 2
		}
	}
	if c.admin, err = splitList(admin); err != nil {
		fmt.Fprintln(os.Stderr, "redisws-bench: -admin:", err)
		return 2
	}
	for _, u := range c.admin {
		if err := checkLoopbackURL(u, "http", "https"); err != nil {
			fmt.Fprintf(os.Stderr, "redisws-bench: refusing admin %q: %v\n", u, err)
			return 2
		}
	}
	ps, _ := splitList(pids)
	for _, p := range ps {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "redisws-bench: -pids: bad pid %q\n", p)
			return 2
		}
		c.pids = append(c.pids, n)
	}
	if c.connectRate <= 0 {
		c.connectRate = 500
	}
	raiseNofile(c.jsonOnly)

	switch c.mode {
	case "fanout":
		if c.subs < 1 || c.pubs < 1 || c.rate <= 0 || c.duration <= 0 || c.drain < 0 || c.settle < 0 || c.rooms < 0 || c.slow < 0 {
			fmt.Fprintln(os.Stderr, "redisws-bench: need -subs >= 1, -pubs >= 1, -rate > 0, -duration > 0, -drain >= 0, -settle >= 0, -rooms >= 0, -slow >= 0")
			return 2
		}
		if c.pubs < c.rooms {
			if !c.jsonOnly {
				fmt.Fprintf(os.Stderr, "redisws-bench: -pubs %d < -rooms %d: using %d publishers, one per room\n", c.pubs, c.rooms, c.rooms)
			}
			c.pubs = c.rooms
		}
		if c.size < headerSize {
			fmt.Fprintf(os.Stderr, "redisws-bench: -size must be at least %d (the header)\n", headerSize)
			return 2
		}
		if c.pubs > maxSender+1 {
			fmt.Fprintf(os.Stderr, "redisws-bench: at most %d publishers (-pubs, -rooms)\n", maxSender+1)
			return 2
		}
		return fanoutMode(&c)
	case "publish":
		if c.pubs < 1 || c.duration <= 0 || c.size < 1 {
			fmt.Fprintln(os.Stderr, "redisws-bench: publish needs -pubs >= 1, -duration > 0, -size >= 1")
			return 2
		}
		return publishMode(&c)
	case "conns":
		if c.conns < 1 {
			fmt.Fprintln(os.Stderr, "redisws-bench: need -conns >= 1")
			return 2
		}
		return connsMode(&c)
	default:
		fmt.Fprintf(os.Stderr, "redisws-bench: unknown mode %q (fanout, publish, conns, table)\n", c.mode)
		return 2
	}
}

func splitList(s string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out, nil
}

// checkURLTemplate: with rooms > 0 a URL must contain {room}, outside its
// host; without rooms it must not contain it.
func checkURLTemplate(raw string, rooms int) error {
	has := strings.Contains(raw, "{room}")
	if rooms == 0 {
		if has {
			return errors.New("contains {room}: give -rooms N")
		}
		return nil
	}
	if !has {
		return errors.New("-rooms needs URL templates containing {room}, e.g. ws://127.0.0.1:8001/rooms/{room}")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if strings.Contains(u.Host, "{") || strings.Contains(u.User.String(), "{") {
		return errors.New("{room} may only appear in the path or the query")
	}
	return nil
}

// roomURL is the URL of room r: {room} replaced with its name.
func roomURL(tmpl string, r int) string {
	return strings.ReplaceAll(tmpl, "{room}", roomName(r))
}

func roomName(r int) string { return "r" + strconv.Itoa(r) }

// checkLoopbackURL accepts only URLs of the given schemes whose host
// resolves to loopback addresses only (127.0.0.0/8 or ::1).
func checkLoopbackURL(raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	ok := false
	for _, s := range schemes {
		ok = ok || u.Scheme == s
	}
	if !ok {
		return fmt.Errorf("scheme must be one of %v", schemes)
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("no host")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("resolve %s: %v", host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("%s resolves to nothing", host)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Errorf("%s resolves to %s, which is not loopback (127.0.0.0/8, ::1); this tool only targets this machine", host, a.IP)
		}
	}
	return nil
}

// loopbackDialer refuses, at connect time, any address that is not loopback,
// whatever a resolver said before.
var loopbackDialer = &net.Dialer{
	Timeout: 10 * time.Second,
	Control: func(network, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("refusing to connect to non-loopback address %s", address)
		}
		return nil
	},
}

func newWSDialer(c *config, readBuf, writeBuf int) *websocket.Dialer {
	return &websocket.Dialer{
		NetDialContext:   loopbackDialer.DialContext,
		HandshakeTimeout: c.handshake,
		ReadBufferSize:   readBuf,
		WriteBufferSize:  writeBuf,
	}
}

func (c *config) header() http.Header {
	h := http.Header{}
	if c.origin != "" {
		h.Set("Origin", c.origin)
	}
	return h
}

var httpClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{DialContext: loopbackDialer.DialContext, Proxy: nil},
}

func raiseNofile(quiet bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil && !quiet {
			fmt.Fprintln(os.Stderr, "redisws-bench: raising RLIMIT_NOFILE:", err)
		}
	}
}

func nofile() uint64 {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil {
		return 0
	}
	return rl.Cur
}

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

func emitJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintln(os.Stderr, "redisws-bench: json:", err)
		return
	}
	os.Stdout.Write(append(b, '\n'))
}
