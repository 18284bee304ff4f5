#!/usr/bin/env bash
# A node stopped under load: what the other nodes see. Builds Caddy (with
# redis_ws; CADDY_BIN=path uses a binary already built) and the load tool,
# starts one redis-server, NODES Caddy nodes (redis_ws with
# stop_close_delay STOP_DELAY when it is not 0), and opens N idle
# WebSockets through Caddy load balancers in front of all the nodes
# (reverse_proxy as in examples/cluster/lb.caddyfile), from load processes
# of at most PER_LOADER connections each, each from its own loopback source
# address (127.0.0.2, ...) and through its own balancer: a proxied WebSocket
# holds two files in a balancer, and a process here may hold 20,000. Each
# load process reconnects a connection the server
# ends, through its balancer, every 100 ms until it opens. Then node 1 gets
# SIGTERM: the script waits for it to exit and for every connection to be
# open again on the other nodes, and reports how long the stop took, the
# 1001 closes, and the reconnects per second (peak and median over the
# seconds from the first reconnect to the last). Appends a row to
# $RESULTS.md and the load processes' JSON lines to $RESULTS.jsonl.
# Bounded: connects within N/CONNECT_RATE + 40 s, the stop within STOP_DELAY
# + 60 s, the reconnects within 120 s, the tool's own watchdog, everything
# stopped on exit. Loopback only.
#
# Environment knobs (defaults = the standard run):
#   N=30000 (connections in all) NODES=3 STOP_DELAY=10s (0: all at once)
#   PER_LOADER=7500 CONNECT_RATE=200 (per load process; the machine opened about 550/s in all) LABEL=
#   RESULTS=bench/drain-results
set -euo pipefail
NAME=drain
source "$(dirname "$0")/lib.sh"

N=${N:-30000}
NODES=${NODES:-3}
STOP_DELAY=${STOP_DELAY:-10s}
PER_LOADER=${PER_LOADER:-7500}
CONNECT_RATE=${CONNECT_RATE:-200}
RESULTS=${RESULTS:-bench/drain-results}
LABEL=${LABEL:-}
((N >= 1 && NODES >= 2 && NODES <= 10 && PER_LOADER >= 1 && PER_LOADER <= 9000)) || {
	log "need N >= 1, 2 <= NODES <= 10, 1 <= PER_LOADER <= 9000 (a balancer holds two files per connection)"
	exit 2
}
delay_s=$(awk -v d="$STOP_DELAY" 'BEGIN { if (d ~ /ms$/) print d / 1000; else if (d ~ /m$/) print d * 60; else print d + 0 }')
COMMAND="${CADDY_BIN:+CADDY_BIN=… }N=$N NODES=$NODES STOP_DELAY=$STOP_DELAY PER_LOADER=$PER_LOADER CONNECT_RATE=$CONNECT_RATE bash bench/drain.sh"

build

free_port REDIS_PORT 6790
start_redis "$REDIS_PORT"
export REDIS_PORT

DIRECTIVE=""
[[ $STOP_DELAY != 0 ]] && DIRECTIVE="stop_close_delay $STOP_DELAY"
cat >"$RUN/node.Caddyfile" <<CADDY
{
	admin 127.0.0.1:{\$ADMIN_PORT}
	persist_config off
}
:{\$PORT} {
	redis_ws /ws chat {
		redis redis://127.0.0.1:{\$REDIS_PORT}
		$DIRECTIVE
	}
	respond /health 200
}
CADDY

# start_caddy NAME PORT ADMIN CONFIG: one Caddy process, its pid appended to NODE_PIDS
start_caddy() {
	PORT=$2 ADMIN_PORT=$3 XDG_CONFIG_HOME="$RUN/xdg-config-$1" XDG_DATA_HOME="$RUN/xdg-data-$1" \
		"$BIN/caddy" run --config "$4" --adapter caddyfile >>"$RUN/caddy-$1.log" 2>&1 &
	NODE_PIDS+=($!)
	wait_until 20 curl -fsS "http://127.0.0.1:$3/config/" &&
		wait_until 20 curl -sS -o /dev/null "http://127.0.0.1:$2/health" || {
		log "caddy $1 did not answer; log:"
		tail -20 "$RUN/caddy-$1.log" >&2
		exit 1
	}
}

PORTS=() ADMINS=() UPSTREAMS=""
for ((i = 0; i < NODES; i++)); do
	free_port NODE_PORT 8801
	free_port NODE_ADMIN 2801
	PORTS+=("$NODE_PORT") ADMINS+=("$NODE_ADMIN")
	UPSTREAMS+=" 127.0.0.1:$NODE_PORT"
	start_caddy "node$i" "$NODE_PORT" "$NODE_ADMIN" "$RUN/node.Caddyfile"
done
DOOMED=${NODE_PIDS[0]}
# Balancer j reaches the nodes at 127.<j+1>.0.1 (a node listens on every
# loopback address): its own destination address, so that the balancers'
# connections to a node do not share one range of ephemeral ports (with
# 30,000 connections, the 14,400 each remaining node held exhausted it:
# connect: cannot assign requested address, then no upstream available).
loaders=$(((N + PER_LOADER - 1) / PER_LOADER))
LB_PORTS=()
for ((i = 0; i < loaders; i++)); do
	free_port LB_PORT 8901
	free_port LB_ADMIN 2901
	LB_PORTS+=("$LB_PORT")
	via="127.$((i + 1)).0.1"
	cat >"$RUN/lb$i.Caddyfile" <<CADDY
{
	admin 127.0.0.1:{\$ADMIN_PORT}
	persist_config off
}
:{\$PORT} {
	reverse_proxy${UPSTREAMS//127.0.0.1/$via} {
		lb_policy least_conn
		lb_try_duration 5s
		fail_duration 10s
		health_uri /health
		health_interval 2s
	}
}
CADDY
	start_caddy "lb$i" "$LB_PORT" "$LB_ADMIN" "$RUN/lb$i.Caddyfile"
done
log "$NODES nodes (ports ${PORTS[*]}) behind $loaders balancers (ports ${LB_PORTS[*]})"

metric() { # metric NAME ADMIN...: its value summed over these nodes' /metrics
	local m=$1 a
	shift
	for a in "$@"; do
		curl -fsS "http://127.0.0.1:$a/metrics" || true
	done | awk -v m="$m" '$1 == m { s += $2 } END { printf "%.0f", s }'
}
conns='caddy_redis_ws_connections{handler="chat"}'

# The load processes, each through its own balancer.
budget=$((N / loaders / CONNECT_RATE + 40))
hold=$((budget + ${delay_s%.*} + 300)) # past the stop and the reconnects; ended by SIGTERM
LOADER_PIDS=()
for ((j = 0; j < loaders; j++)); do
	share=$((N / loaders + (j < N % loaders ? 1 : 0)))
	"$BIN/redisws-bench" conns -json -reconnect -urls "ws://127.0.0.1:${LB_PORTS[j]}/ws" -conns "$share" \
		-sources "127.0.0.$((j + 2))" -connect-rate "$CONNECT_RATE" \
		-handshake-timeout 30s -hold "${hold}s" -ready "$RUN/ready-$j" >"$RUN/loader-$j.json" 2>"$RUN/loader-$j.log" &
	LOADER_PIDS+=($!)
done
PIDS+=("${LOADER_PIDS[@]}")
log "opening $N WebSockets through the balancers with $loaders load process(es) ..."
wait_ready "$loaders" "$budget"
all_counted() { [[ $(metric "$conns" "${ADMINS[@]}") == "$opened" ]]; }
wait_until 60 all_counted || log "the nodes count $(metric "$conns" "${ADMINS[@]}") of $opened"
on_doomed=$(metric "$conns" "${ADMINS[0]}")
log "$opened open, $on_doomed on node 1; SIGTERM to node 1 (stop_close_delay $STOP_DELAY) ..."

t0=$(date +%s.%N)
kill -TERM "$DOOMED"
for ((t = 0; t < (${delay_s%.*} + 60) * 10; t++)); do
	kill -0 "$DOOMED" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$DOOMED" 2>/dev/null; then
	log "node 1 still running $((${delay_s%.*} + 60))s after SIGTERM"
	exit 1
fi
stop_s=$(awk -v t0="$t0" -v now="$(date +%s.%N)" 'BEGIN { printf "%.1f", now - t0 }')
log "node 1 exited after ${stop_s}s; waiting for every connection to be back on the others ..."
back=0
for ((t = 0; t < 1200; t++)); do
	back=$(metric "$conns" "${ADMINS[@]:1}")
	((back >= opened)) && break
	sleep 0.1
done
back_s=$(awk -v t0="$t0" -v now="$(date +%s.%N)" 'BEGIN { printf "%.1f", now - t0 }')
((back >= opened)) || log "only $back of $opened back after 120 s"

# SIGTERM ends a load process's -hold: it closes its connections and reports.
kill -TERM "${LOADER_PIDS[@]}" 2>/dev/null || true
for pid in "${LOADER_PIDS[@]}"; do wait "$pid" || log "load process $pid: exit $?"; done
touch "$RESULTS.jsonl"
cat "$RUN"/loader-*.json >>"$RESULTS.jsonl"

# Reconnects per second, summed over the loaders; the seconds counted from
# SIGTERM; peak and median over the seconds from the first to the last.
read -r closes recon peak p50 first last < <(cat "$RUN"/loader-*.json | python3 -c '
import json, sys
t0 = float(sys.argv[1])
closes = recon = 0
by = {}
for line in sys.stdin:
    r = json.loads(line)
    closes += r.get("close_codes", {}).get("1001", 0)
    recon += r.get("reconnects", 0)
    for s, n in (r.get("reconnects_by_second") or {}).items():
        by[int(s)] = by.get(int(s), 0) + n
if not by:
    print(closes, recon, 0, 0, "-", "-")
    sys.exit()
lo, hi = min(by), max(by)
counts = sorted(by.get(s, 0) for s in range(lo, hi + 1))
print(closes, recon, max(counts), counts[len(counts) // 2], lo - int(t0), hi - int(t0))
' "$t0")

MD=$RESULTS.md
if [[ ! -s $MD ]]; then
	{
		echo "# redis_ws: a node stopped under load"
		echo
		echo "Written by \`bench/drain.sh\`, one row per run: NODES nodes behind Caddy balancers (one per load process), N idle" \
			"WebSockets opened through them; node 1 gets SIGTERM. Stop = SIGTERM to the exit of node 1; back = SIGTERM until the" \
			"other nodes count every connection again. Reconnects/s: the load processes' reconnects (opened through the" \
			"balancers, retried every 100 ms), summed per second; peak and median over the seconds from the first" \
			"reconnect to the last; first..last in seconds after SIGTERM. Nodes, balancers, Redis and load processes share the machine (loopback)."
		echo
		echo "| run | stop_close_delay | connections (on node 1) | 1001 closes | reconnects | stop | back | reconnects/s peak | reconnects/s p50 | seconds first..last | command |"
		echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
	} >"$MD"
fi
echo "| $(date -u '+%Y-%m-%d %H:%M') $(git rev-parse --short HEAD)${LABEL:+ $LABEL} | $STOP_DELAY | $opened ($on_doomed) | $closes | $recon |" \
	"${stop_s} s | ${back_s} s | $peak | $p50 | $first..$last | \`$COMMAND\` |" >>"$MD"
log "wrote $RESULTS.jsonl and $MD"
tail -1 "$MD" >&2
