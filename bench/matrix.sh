#!/usr/bin/env bash
# Standard load matrix for redis_ws: builds Caddy (with redis_ws) and the load
# tool, starts its own redis-server and two Caddy nodes on free loopback ports,
# runs fanout at 100 / 1,000 / 5,000 msg/s (1,000 subscribers, 2 publishers,
# 64 B, 10 s each) and conns with 2,000 idle connections on fresh nodes, then
# writes bench/results.jsonl and bench/results.md. Everything it starts is
# stopped on exit. Loopback only. Wall time: about 1.5 to 2.5 minutes.
#
# Environment knobs (defaults = the standard matrix):
#   SUBS=1000 PUBS=2 SIZE=64 RATES="100 1000 5000" DURATION=10s DRAIN=5s CONNS=2000
#   RESULTS=bench/results   (writes $RESULTS.jsonl and $RESULTS.md)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/bench/.bin
SUBS=${SUBS:-1000}
PUBS=${PUBS:-2}
SIZE=${SIZE:-64}
RATES=${RATES:-"100 1000 5000"}
DURATION=${DURATION:-10s}
DRAIN=${DRAIN:-5s}
CONNS=${CONNS:-2000}
RESULTS=${RESULTS:-bench/results}

RUN=$(mktemp -d "${TMPDIR:-/tmp}/redisws-matrix.XXXXXX")
PIDS=()
NODE_PIDS=()

log() { printf '[matrix %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for pid in "${NODE_PIDS[@]}" "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${NODE_PIDS[@]}" "${PIDS[@]}"; do
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
	done
	if [[ $rc -ne 0 ]]; then
		log "failed (exit $rc); logs kept in $RUN"
	else
		rm -rf "$RUN"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port VAR BASE: set VAR to the first free port from BASE that this script has not taken yet
TAKEN=" "
free_port() {
	local p
	for ((p = $2; p < $2 + 200; p++)); do
		if [[ $TAKEN != *" $p "* ]] && port_free "$p"; then
			TAKEN+="$p "
			printf -v "$1" '%s' "$p"
			return 0
		fi
	done
	log "no free port from $2"
	return 1
}

wait_until() { # wait_until SECONDS CMD...: retry CMD every 0.1 s
	local t=$1
	shift
	for ((i = 0; i < t * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

mkdir -p "$BIN"
log "building caddy and redisws-bench ..."
go build -o "$BIN/caddy" ./cmd/caddy
go build -o "$BIN/redisws-bench" ./cmd/redisws-bench

free_port REDIS_PORT 6390
log "starting redis-server on 127.0.0.1:$REDIS_PORT"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
	--dir "$RUN" --logfile "$RUN/redis.log" &
PIDS+=($!)
wait_until 10 redis-cli -p "$REDIS_PORT" ping || {
	log "redis-server did not answer"
	exit 1
}

cat >"$RUN/Caddyfile" <<'CADDY'
{
	admin 127.0.0.1:{$ADMIN_PORT}
	persist_config off
}
:{$PORT} {
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
}
CADDY

free_port P1 8401
free_port P2 8402
free_port A1 2401
free_port A2 2402
URLS="ws://127.0.0.1:$P1/ws,ws://127.0.0.1:$P2/ws"
ADMINS="http://127.0.0.1:$A1,http://127.0.0.1:$A2"

start_nodes() {
	local i port admin
	NODE_PIDS=()
	for i in 1 2; do
		if [[ $i == 1 ]]; then port=$P1 admin=$A1; else port=$P2 admin=$A2; fi
		PORT=$port ADMIN_PORT=$admin REDIS_PORT=$REDIS_PORT \
			XDG_CONFIG_HOME="$RUN/xdg-config-$i" XDG_DATA_HOME="$RUN/xdg-data-$i" \
			"$BIN/caddy" run --config "$RUN/Caddyfile" --adapter caddyfile \
			>>"$RUN/caddy-$i.log" 2>&1 &
		NODE_PIDS+=($!)
	done
	for i in 1 2; do
		if [[ $i == 1 ]]; then port=$P1 admin=$A1; else port=$P2 admin=$A2; fi
		# answers = the admin API is up and the site port returns an HTTP status
		wait_until 20 curl -fsS "http://127.0.0.1:$admin/config/" &&
			wait_until 20 curl -sS -o /dev/null "http://127.0.0.1:$port/ws" || {
			log "caddy node $i did not answer; log:"
			tail -20 "$RUN/caddy-$i.log" >&2
			exit 1
		}
	done
	log "caddy nodes up: pids ${NODE_PIDS[*]}, ports $P1 $P2, admin $A1 $A2"
}

stop_nodes() {
	local pid
	for pid in "${NODE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${NODE_PIDS[@]}"; do
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
	done
	NODE_PIDS=()
}

OUT=$RESULTS.jsonl
MD=$RESULTS.md
: >"$OUT"

start_nodes
for rate in $RATES; do
	log "fanout: $SUBS subs, $PUBS pubs, $SIZE B, $rate msg/s, $DURATION"
	"$BIN/redisws-bench" fanout -urls "$URLS" -subs "$SUBS" -pubs "$PUBS" -size "$SIZE" \
		-rate "$rate" -duration "$DURATION" -drain "$DRAIN" \
		-pids "$(IFS=,; echo "${NODE_PIDS[*]}")" >>"$OUT"
	sleep 1
done

# Idle-connection cost on fresh nodes: after a fanout run the nodes' heaps have
# grown and freed memory gets reused, which would understate the cost.
stop_nodes
start_nodes
sleep 1
log "conns: $CONNS idle connections"
"$BIN/redisws-bench" conns -urls "$URLS" -conns "$CONNS" \
	-pids "$(IFS=,; echo "${NODE_PIDS[*]}")" -admin "$ADMINS" >>"$OUT"

{
	echo "# redis_ws load matrix"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(go version | cut -d' ' -f3-), $(nproc) cores," \
		"commit $(git rev-parse --short HEAD 2>/dev/null || echo none)." \
		"2 Caddy nodes + 1 redis-server + the load tool on the same machine (loopback)."
	echo "Deliveries/s = received deliveries / (last receipt − first send); loss counted at the end of the drain" \
		"(at most $DRAIN after the last send); latency = receive − send time of each delivery." \
		"Node RSS = sum of both Caddy processes' VmRSS."
	echo
	"$BIN/redisws-bench" table "$OUT"
} >"$MD"
log "wrote $OUT and $MD"
cat "$MD" >&2
