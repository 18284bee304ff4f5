// Command redisws-bench is a load tool for the redis_ws Caddy module.
//
// Modes:
//
//	fanout (default)  publishers send paced, stamped frames; subscribers on every
//	                  node measure delivery, loss, duplicates, order and latency.
//	                  -rooms N: URL templates with {room}, rooms r0..r(N-1), each
//	                  subscriber expects its room's messages only. -slow N: N more
//	                  subscribers that never read; the end reports whether the
//	                  server closed them. -transport sse: the subscribers are
//	                  Server-Sent Events streams (GET, Accept: text/event-stream,
//	                  each on its own TCP connection) instead of WebSockets; the
//	                  publishers stay WebSocket; the JSON line names the transport.
//	publish           connections send frames as fast as they can; bench/publish.sh
//	                  counts what reaches Redis.
//	post              -pubs keep-alive HTTP clients (each its own connection) POST
//	                  -size byte bodies to the route URL(s) for -duration, as fast
//	                  as answered or at -rate in all (at most -posts); reports 200s/s,
//	                  other answers by status, latency; bench/post.sh checks Redis.
//	conns             opens idle connections (WebSockets, or event streams with -transport sse
//	                  or h2), reports the servers' RSS per connection; -hold keeps them
//	                  open, -ready tells a script when they are, -sources spreads them
//	                  over local addresses; messages stamped with their send time
//	                  (Unix nanoseconds) give a delivery latency.
//	resume            -subs envelope clients fall -behind on a route with history and
//	                  reconnect at once with ?since=; time until all caught up and live.
//	manyrooms         -conns WebSockets over the nodes, each subscribed by command to -per-conn
//	                  of -rooms rooms (redis_ws.v2, or Centrifugo with -server centrifugo);
//	                  -pubs publish commands to every room at -room-rate: deliveries,
//	                  loss, latency, subscribe answer times, node memory per
//	                  subscription and write system calls per delivery (-pids).
//	table             turns JSON result lines (files or stdin) into a Markdown table.
//
// The mode is the first argument or -mode. Only loopback targets are accepted.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/chatjson"
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
	transport   string // fanout: of the subscribers, ws or sse; conns: ws, sse or h2
	dialer      *sourceDialer
	hold        time.Duration // conns: how long the connections stay open
	ready       string        // conns: a file written once they are open
	reconnect   bool          // conns: WebSockets the server ends come back
	maxPosts    int           // post: at most this many requests in all (0: no limit)
	compress    bool          // WebSockets offer permessage-deflate
	payload     string        // fanout: what follows a payload's header, x or chat
	checkEvery  int           // fanout: every this-many-th WebSocket subscriber checks messages

	behind       int      // resume: messages published while the clients are away
	subprotocols []string // offered in the handshake (resume: redis_ws.v1)
	paced        bool     // publish: -rate was given

	perConn  int         // manyrooms: rooms each connection subscribes to
	roomRate float64     // manyrooms: messages per second per room
	server   roomsServer // manyrooms: redisws or centrifugo
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
	var urls, pids, admin, sources, server string
	fs.StringVar(&c.mode, "mode", mode, "fanout | publish | post | conns | resume | manyrooms | table (may also be given as the first argument)")
	fs.StringVar(&urls, "urls", "ws://127.0.0.1:8001/ws,ws://127.0.0.1:8002/ws", "comma-separated ws:// URLs of the nodes (loopback only); post: http:// or ws:// (asked over http://)")
	fs.IntVar(&c.subs, "subs", 200, "fanout: subscriber connections, round-robin over -urls")
	fs.IntVar(&c.pubs, "pubs", 2, "fanout: publisher connections, round-robin over -urls (at least -rooms);\n"+
		"publish: connections; post: HTTP clients, each on its own keep-alive connection")
	fs.StringVar(&c.transport, "transport", "ws", "fanout, conns: how the subscribers connect: ws (WebSocket) or sse (GET with Accept: text/event-stream,\n"+
		"the ws:// URLs asked over http://, one TCP connection per stream); publishers are always WebSocket;\n"+
		"conns also: h2 (the stream over HTTP/2 without TLS, h2c, one TCP connection per stream)")
	fs.StringVar(&sources, "sources", "", "comma-separated loopback addresses to connect from, in turn (127.0.0.2,127.0.0.3):\n"+
		"each has its own ephemeral ports (default: the kernel's choice)")
	fs.DurationVar(&c.hold, "hold", 0, "conns: keep the connections open and idle this long after they are all open\n"+
		"(SIGINT or SIGTERM ends it early; the run then reports as usual)")
	fs.BoolVar(&c.reconnect, "reconnect", false, "conns: a WebSocket the server ends connects again to its URL (every 100 ms until it opens);\n"+
		"the JSON line counts the reconnects by the second they opened in")
	fs.StringVar(&c.ready, "ready", "", "conns: write the number of connections open to this file once they are")
	fs.BoolVar(&c.compress, "compress", false, "every WebSocket offers permessage-deflate (gorilla's client, which then compresses what it sends too,\n"+
		"as browsers do); fanout reports the bytes its subscribers read off their sockets either way")
	fs.IntVar(&c.checkEvery, "check-every", 1, "fanout: every Nth WebSocket subscriber reads and checks each message (sequence, duplicates,\n"+
		"latency); the others count frames off the socket without reading them (no inflating), and loss counts all")
	fs.StringVar(&c.payload, "payload", "x", "fanout: what follows a payload's header: x (padding) or chat (a JSON chat message of the rest of -size,\n"+
		"which compresses as chat does; see internal/chatjson)")
	fs.IntVar(&c.maxPosts, "posts", 0, "post: at most this many requests in all (0: only -duration bounds the run)")
	fs.IntVar(&c.rooms, "rooms", 0, "fanout: rooms r0..r(N-1); the -urls are templates with {room}, subscribers and publishers\n"+
		"are spread round-robin over rooms and nodes, each subscriber expects its room's messages (0: one shared channel)")
	fs.IntVar(&c.slow, "slow", 0, "fanout: extra subscriber connections that never read after the handshake (not in -subs);\n"+
		"after the drain each is read until the server's close or a short quiet time")
	fs.IntVar(&c.perConn, "per-conn", 20, "manyrooms: rooms each connection subscribes to (of -rooms)")
	fs.Float64Var(&c.roomRate, "room-rate", 1, "manyrooms: messages per second to each room")
	fs.StringVar(&server, "server", "redisws", "manyrooms: what -urls serve: redisws (redis_ws.v2 commands) or centrifugo (its JSON protocol, /connection/websocket)")
	fs.IntVar(&c.behind, "behind", 100, "resume: messages published while the -subs clients are away (-duration bounds each wait)")
	fs.StringVar(&c.label, "label", "", "fanout, post: free text copied to the JSON line; table mode lists labelled runs in their own table")
	fs.Float64Var(&c.rate, "rate", 1000, "fanout: total messages per second over all publishers; publish: frames per second in all when given (else as fast as they can);\n"+
		"post: requests per second in all when given (else each client sends its next one when answered)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "fanout: send window; publish, post: how long they send")
	fs.IntVar(&c.size, "size", 64, fmt.Sprintf("fanout: payload bytes (>= %d, the header); publish: frame bytes; post: body bytes (stamped when >= %d)", headerSize, headerSize))
	fs.DurationVar(&c.drain, "drain", 5*time.Second, "fanout: longest wait after the last send for stragglers (ends early when all arrived);\npublish: for the node to read every frame sent and close")
	fs.DurationVar(&c.settle, "settle", 500*time.Millisecond, "fanout: pause between the last connection and the first send")
	fs.Float64Var(&c.connectRate, "connect-rate", 500, "connections opened per second")
	fs.DurationVar(&c.handshake, "handshake-timeout", 10*time.Second, "timeout of one WebSocket handshake")
	fs.BoolVar(&c.jsonOnly, "json", false, "print only the JSON line (no summary on stderr)")
	fs.StringVar(&c.origin, "origin", "", "Origin header to send (none when empty)")
	fs.IntVar(&c.conns, "conns", 2000, "conns: idle connections to open")
	fs.StringVar(&pids, "pids", "", "comma-separated pids of the server processes (RSS from /proc/PID/status; resume: their CPU over the storm)")
	fs.StringVar(&admin, "admin", "", "comma-separated admin base URLs (http://127.0.0.1:2019): conns: goroutine counts via /debug/pprof;\n"+
		"fanout: the nodes' mean fan-out latency from /metrics")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fs.Visit(func(f *flag.Flag) { c.paced = c.paced || f.Name == "rate" })
	if fs.NArg() > 0 && c.mode != "table" {
		fmt.Fprintf(os.Stderr, "redisws-bench: unexpected arguments: %v\n", fs.Args())
		return 2
	}
	if c.mode == "table" {
		return tableMode(fs.Args())
	}
	if c.urls = splitList(urls); len(c.urls) == 0 {
		fmt.Fprintln(os.Stderr, "redisws-bench: -urls: need at least one URL")
		return 2
	}
	if (c.mode != "fanout" && c.mode != "manyrooms" && c.rooms != 0) || (c.mode != "fanout" && c.slow != 0) {
		fmt.Fprintln(os.Stderr, "redisws-bench: -rooms is for fanout and manyrooms, -slow for fanout only")
		return 2
	}
	templateRooms := c.rooms
	if c.mode == "manyrooms" {
		templateRooms = 0 // rooms are channels subscribed by command, not URLs
	}
	for _, u := range c.urls {
		if err := checkURLTemplate(u, templateRooms); err != nil {
			fmt.Fprintf(os.Stderr, "redisws-bench: %q: %v\n", u, err)
			return 2
		}
		schemes := []string{"ws", "wss"}
		if c.mode == "post" {
			schemes = []string{"http", "ws"}
		}
		if err := checkLoopbackURL(roomURL(u, 0), schemes...); err != nil {
			fmt.Fprintf(os.Stderr, "redisws-bench: refusing %q: %v\n", u, err)
			return 2
		}
	}
	c.admin = splitList(admin)
	for _, u := range c.admin {
		if err := checkLoopbackURL(u, "http", "https"); err != nil {
			fmt.Fprintf(os.Stderr, "redisws-bench: refusing admin %q: %v\n", u, err)
			return 2
		}
	}
	for _, p := range splitList(pids) {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "redisws-bench: -pids: bad pid %q\n", p)
			return 2
		}
		c.pids = append(c.pids, n)
	}
	if c.payload != "x" && c.payload != "chat" {
		fmt.Fprintf(os.Stderr, "redisws-bench: -payload %q: x or chat\n", c.payload)
		return 2
	}
	if err := c.checkTransport(); err != nil {
		fmt.Fprintln(os.Stderr, "redisws-bench:", err)
		return 2
	}
	src, err := parseSources(sources)
	if err != nil {
		fmt.Fprintln(os.Stderr, "redisws-bench:", err)
		return 2
	}
	c.dialer = newSourceDialer(src)
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
		if c.checkEvery < 1 || (c.checkEvery > 1 && c.transport != "ws") {
			fmt.Fprintln(os.Stderr, "redisws-bench: -check-every must be at least 1, and 1 with -transport sse")
			return 2
		}
		if c.payload == "chat" && c.size < headerSize+chatjson.MinSize {
			fmt.Fprintf(os.Stderr, "redisws-bench: -payload chat needs -size >= %d (the header and the shortest chat message)\n", headerSize+chatjson.MinSize)
			return 2
		}
		if c.pubs > maxSender+1 {
			fmt.Fprintf(os.Stderr, "redisws-bench: at most %d publishers (-pubs, -rooms)\n", maxSender+1)
			return 2
		}
		return fanoutMode(&c)
	case "publish":
		if c.pubs < 1 || c.duration <= 0 || c.size < 1 || (c.paced && c.rate <= 0) {
			fmt.Fprintln(os.Stderr, "redisws-bench: publish needs -pubs >= 1, -duration > 0, -size >= 1, -rate > 0 when given")
			return 2
		}
		return publishMode(&c)
	case "post":
		if c.pubs < 1 || c.pubs > maxPostClients || c.duration <= 0 || c.size < 0 || c.maxPosts < 0 || (c.paced && c.rate <= 0) {
			fmt.Fprintf(os.Stderr, "redisws-bench: post needs 1 <= -pubs <= %d, -duration > 0, -size >= 0, -posts >= 0, -rate > 0 when given\n", maxPostClients)
			return 2
		}
		return postMode(&c)
	case "conns":
		if c.conns < 1 || c.hold < 0 {
			fmt.Fprintln(os.Stderr, "redisws-bench: need -conns >= 1, -hold >= 0")
			return 2
		}
		return connsMode(&c)
	case "manyrooms":
		return manyroomsChecked(&c, server)
	case "resume":
		if c.subs < 1 || c.behind < 1 || c.duration <= 0 || c.size < 1 {
			fmt.Fprintln(os.Stderr, "redisws-bench: resume needs -subs >= 1, -behind >= 1, -duration > 0, -size >= 1")
			return 2
		}
		return resumeMode(&c)
	default:
		fmt.Fprintf(os.Stderr, "redisws-bench: unknown mode %q (fanout, publish, post, conns, resume, manyrooms, table)\n", c.mode)
		return 2
	}
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
