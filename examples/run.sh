#!/usr/bin/env bash
# Runs the cluster example: one redis-server, two Caddy nodes with redis_ws
# (examples/cluster/node.caddyfile, serving the chat page of examples/chat) and
# a Caddy load balancer in front of them (examples/cluster/lb.caddyfile), the
# one address to open. Installs redis-server with apt-get when it is missing,
# builds Caddy with the module from this checkout (go build ./cmd/caddy), and
# stops everything on Ctrl-C. Ports (environment): LB_PORT=8000 NODE1_PORT=8001
# NODE2_PORT=8002 REDIS_PORT=6390; admin endpoints on 2000, 2001 and 2002.
set -euo pipefail
cd "$(dirname "$0")/.."

LB_PORT=${LB_PORT:-8000}
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
for port in "$LB_PORT" "$NODE1_PORT" "$NODE2_PORT" "$REDIS_PORT" 2000 2001 2002; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		die "port $port is taken; set LB_PORT, NODE1_PORT, NODE2_PORT or REDIS_PORT, or stop what uses it"
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

# caddy runs with its data and config directories under $RUN, so the example
# leaves nothing behind in the home directory.
start_caddy() { # name port admin_port config [VAR=value...]
	local name=$1 port=$2 admin=$3 config=$4
	shift 4
	env PORT="$port" ADMIN_PORT="$admin" XDG_DATA_HOME="$RUN/$name" XDG_CONFIG_HOME="$RUN/$name" "$@" \
		"$RUN/caddy" run --config "$config" >"$RUN/$name.log" 2>&1 &
	pids+=($!)
}
start_caddy node1 "$NODE1_PORT" 2001 examples/cluster/node.caddyfile REDIS_PORT="$REDIS_PORT" CHAT_ROOT="$PWD/examples/chat"
node1_pid=$!
start_caddy node2 "$NODE2_PORT" 2002 examples/cluster/node.caddyfile REDIS_PORT="$REDIS_PORT" CHAT_ROOT="$PWD/examples/chat"
node2_pid=$!
start_caddy lb "$LB_PORT" 2000 examples/cluster/lb.caddyfile NODE1="127.0.0.1:$NODE1_PORT" NODE2="127.0.0.1:$NODE2_PORT"

healthy() { # GET /health (through the balancer: from a node) without needing curl
	(exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3 &&
		head -n 1 <&3 | grep -q ' 200 ') 2>/dev/null
}
for port in "$NODE1_PORT" "$NODE2_PORT" "$LB_PORT"; do
	for _ in $(seq 100); do
		healthy "$port" && break
		sleep 0.1
	done
	healthy "$port" || die "Caddy on port $port did not start: $(tail -n 5 "$RUN"/*.log)"
done

cat <<EOF
Open http://localhost:$LB_PORT/ in two or more browser tabs.

A load balancer on port $LB_PORT spreads the tabs over two redis_ws nodes (ports $NODE1_PORT and
$NODE2_PORT) that share Redis on port $REDIS_PORT: every tab sees every message. Try also:

  redis-cli -p $REDIS_PORT publish chat "hello from redis-cli"   # shows up in every tab
  kill $node2_pid      # stops node 2: its tabs reconnect, through the balancer, to node 1

Several rooms on one connection (redis_ws.v2 commands), with the JavaScript client
of clients/js: http://localhost:$LB_PORT/rooms.html?name=alice

Logs: $RUN/{node1,node2,lb,redis}.log (node 1 is pid $node1_pid). Ctrl-C stops everything.
EOF
wait
