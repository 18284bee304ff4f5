#!/usr/bin/env bash
# Runs the example: one redis-server and two Caddy nodes with redis_ws, serving
# Caddyfile.example on http://localhost:8001 and http://localhost:8002.
# Installs redis-server with apt-get when it is missing, builds Caddy with the
# module from this checkout (go build ./cmd/caddy), and stops everything on
# Ctrl-C. Ports: NODE1_PORT=8001 NODE2_PORT=8002 REDIS_PORT=6390 (environment).
set -euo pipefail
cd "$(dirname "$0")/.."

NODE1_PORT=${NODE1_PORT:-8001}
NODE2_PORT=${NODE2_PORT:-8002}
REDIS_PORT=${REDIS_PORT:-6390}
RUN=$(mktemp -d "${TMPDIR:-/tmp}/redis-ws-example.XXXXXX")

say() { printf '%s\n' "$*" >&2; }
die() { say "run.sh: $*"; exit 1; }

command -v go >/dev/null || die "Go is missing: install Go 1.26 or newer (https://go.dev/doc/install)"
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
	say "installing redis-server with apt-get"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
for port in "$NODE1_PORT" "$NODE2_PORT" "$REDIS_PORT" 2001 2002; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		die "port $port is taken; set NODE1_PORT, NODE2_PORT or REDIS_PORT, or stop what uses it"
	fi
done

say "building Caddy with redis_ws (the first build takes a few minutes)"
go build -o "$RUN/caddy" ./cmd/caddy

pids=()
cleanup() {
	trap - EXIT INT TERM
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$RUN" \
	--logfile "$RUN/redis.log" &
pids+=($!)
for i in 1 2; do
	port_var=NODE${i}_PORT
	PORT=${!port_var} ADMIN_PORT=200$i REDIS_PORT=$REDIS_PORT XDG_DATA_HOME=$RUN/node$i XDG_CONFIG_HOME=$RUN/node$i \
		"$RUN/caddy" run --config Caddyfile.example --adapter caddyfile >"$RUN/node$i.log" 2>&1 &
	pids+=($!)
done

healthy() { # GET /health without needing curl
	(exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3 &&
		head -n 1 <&3 | grep -q ' 200 ') 2>/dev/null
}
for port in "$NODE1_PORT" "$NODE2_PORT"; do
	for _ in $(seq 100); do
		healthy "$port" && break
		sleep 0.1
	done
	healthy "$port" || die "the node on port $port did not start: $(tail -n 5 "$RUN"/node*.log)"
done

cat <<EOF
redis_ws is running: Redis on 127.0.0.1:$REDIS_PORT, two Caddy nodes sharing it.

  ws://localhost:$NODE1_PORT/ws        ws://localhost:$NODE2_PORT/ws         everyone, channel "chat"
  ws://localhost:$NODE1_PORT/rooms/a   ws://localhost:$NODE2_PORT/rooms/a    one channel per room: "room:a"
  ws://localhost:$NODE1_PORT/news      ws://localhost:$NODE2_PORT/news       receive-only, channel "news"

Try it: open http://localhost:$NODE1_PORT/health in one tab and http://localhost:$NODE2_PORT/health in
another, and paste into each tab's browser console (same origin, so it is allowed):

  ws = new WebSocket("ws://" + location.host + "/ws"); ws.onmessage = e => console.log(e.data)
  ws.send("hello from " + location.port)

Both tabs print both messages. From a shell:

  redis-cli -p $REDIS_PORT publish chat hi     # reaches every /ws client on both nodes
  redis-cli -p $REDIS_PORT subscribe chat      # shows what the clients send

Logs: $RUN/node1.log, $RUN/node2.log. Ctrl-C stops everything.
EOF
wait
