#!/usr/bin/env bash
# Idle connections at scale: what an idle WebSocket (or event stream) costs a
# node, and a fleet of them under a slow fan-out. Builds Caddy (with
# redis_ws; CADDY_BIN=path uses a binary already built) and the load tool,
# starts one redis-server and NODES Caddy nodes, and opens N idle connections
# to each node from load processes of at most PER_LOADER connections each (a
# process here may hold 20,000 files), each from its own loopback source
# address (127.0.0.2, 127.0.0.3, ...: its own ephemeral ports). Once all are
# open it reads, per node and summed: RSS (VmRSS) before and after, the Go
# heap and goroutine stacks in use (go_memstats_* of the admin /metrics),
# goroutines; then for HOLD it measures the nodes' CPU while the connections
# idle (the server pings each every ping_interval, 30 s by default), and with
# RATE > 0 publishes RATE stamped messages/s (POST to node 1) that every
# connection receives: deliveries/s and latency. Appends a row to
# $RESULTS.md and the load processes' JSON lines to $RESULTS.jsonl.
# Bounded: connects within N/CONNECT_RATE + 40 s, the tool's own watchdog,
# everything stopped on exit. Loopback only.
#
# Environment knobs (defaults = the standard run):
#   N=2000 NODES=1 TRANSPORT=ws (ws | sse | h2: event streams over HTTP/1.1 or h2c)
#   HOLD=60 (s) RATE=0 (msg/s, may be 0.5) DRAIN=30 (s after the last publish, for late deliveries)
#   PER_LOADER=9000 CONNECT_RATE=500 (per load process)
#   GOGC= (the nodes' GOGC) EXTRA= (one more directive on the route) LABEL=
#   RESULTS=bench/idle-results
set -euo pipefail
NAME=idle
source "$(dirname "$0")/lib.sh"

N=${N:-2000}
NODES=${NODES:-1}
TRANSPORT=${TRANSPORT:-ws}
HOLD=${HOLD:-60}
RATE=${RATE:-0}
DRAIN=${DRAIN:-30}
PER_LOADER=${PER_LOADER:-9000}
CONNECT_RATE=${CONNECT_RATE:-500}
RESULTS=${RESULTS:-bench/idle-results}
LABEL=${LABEL:-}
case $TRANSPORT in ws | sse | h2) ;; *)
	log "TRANSPORT=$TRANSPORT: ws, sse or h2"
	exit 2
	;;
esac
((N >= 1 && NODES >= 1 && NODES <= 20 && PER_LOADER >= 1 && HOLD >= 1)) || {
	log "need N >= 1, 1 <= NODES <= 20, PER_LOADER >= 1, HOLD >= 1"
	exit 2
}
COMMAND="${CADDY_BIN:+CADDY_BIN=… }N=$N NODES=$NODES TRANSPORT=$TRANSPORT HOLD=$HOLD RATE=$RATE DRAIN=$DRAIN PER_LOADER=$PER_LOADER CONNECT_RATE=$CONNECT_RATE${GOGC:+ GOGC=$GOGC}${EXTRA:+ EXTRA=\"$EXTRA\"} bash bench/idle.sh"

build

free_port REDIS_PORT 6690
start_redis "$REDIS_PORT"
export REDIS_PORT

PROTOCOLS=""
[[ $TRANSPORT == h2 ]] && PROTOCOLS="servers {
		protocols h1 h2c
	}"
cat >"$RUN/Caddyfile" <<CADDY
{
	admin 127.0.0.1:{\$ADMIN_PORT}
	persist_config off
	$PROTOCOLS
}
:{\$PORT} {
	redis_ws /ws chat {
		redis redis://127.0.0.1:{\$REDIS_PORT}
		${EXTRA:-}
	}
}
CADDY

PORTS=() ADMINS=()
for ((i = 0; i < NODES; i++)); do
	free_port NODE_PORT 8701
	free_port NODE_ADMIN 2701
	PORTS+=("$NODE_PORT") ADMINS+=("$NODE_ADMIN")
	PORT=$NODE_PORT ADMIN_PORT=$NODE_ADMIN XDG_CONFIG_HOME="$RUN/xdg-config-$i" XDG_DATA_HOME="$RUN/xdg-data-$i" \
		GOGC=${GOGC:-} "$BIN/caddy" run --config "$RUN/Caddyfile" --adapter caddyfile >>"$RUN/caddy-$i.log" 2>&1 &
	NODE_PIDS+=($!)
done
for ((i = 0; i < NODES; i++)); do
	wait_until 20 curl -fsS "http://127.0.0.1:${ADMINS[i]}/config/" &&
		wait_until 20 curl -sS -o /dev/null "http://127.0.0.1:${PORTS[i]}/ws" || {
		log "caddy node $i did not answer; log:"
		tail -20 "$RUN/caddy-$i.log" >&2
		exit 1
	}
done
log "$NODES node(s) up: pids ${NODE_PIDS[*]}, ports ${PORTS[*]}"

rss_kb() { # the nodes' VmRSS, summed
	local pid sum=0
	for pid in "${NODE_PIDS[@]}"; do
		sum=$((sum + $(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")))
	done
	echo "$sum"
}
metric() { # metric NAME: its value summed over the nodes' /metrics
	local a
	for a in "${ADMINS[@]}"; do
		curl -fsS "http://127.0.0.1:$a/metrics"
	done | awk -v m="$1" '$1 == m { s += $2 } END { printf "%.0f", s }'
}
settle() { # a few seconds for the nodes to finish what the connects left
	local a
	sleep 3
	for a in "${ADMINS[@]}"; do
		curl -fsS "http://127.0.0.1:$a/debug/pprof/heap?gc=1" -o /dev/null || true
	done
	sleep 2
}

settle
rss0=$(rss_kb) heap0=$(metric go_memstats_heap_inuse_bytes) stack0=$(metric go_memstats_stack_inuse_bytes)
gor0=$(metric go_goroutines)

# The load processes: each its share of a node's N, its own source address.
loaders=$(((N + PER_LOADER - 1) / PER_LOADER))
budget=$((N / loaders / CONNECT_RATE + 40))
hold=$((budget + 2 * HOLD + DRAIN + 60)) # past the window, however early it was ready; ended by SIGTERM
LOADER_PIDS=()
k=0
for ((i = 0; i < NODES; i++)); do
	for ((j = 0; j < loaders; j++)); do
		share=$((N / loaders + (j < N % loaders ? 1 : 0)))
		"$BIN/redisws-bench" conns -json -urls "ws://127.0.0.1:${PORTS[i]}/ws" -conns "$share" \
			-transport "$TRANSPORT" -sources "127.0.0.$((k + 2))" -connect-rate "$CONNECT_RATE" \
			-handshake-timeout 30s -hold "${hold}s" -ready "$RUN/ready-$k" >"$RUN/loader-$k.json" 2>"$RUN/loader-$k.log" &
		LOADER_PIDS+=($!)
		k=$((k + 1))
	done
done
PIDS+=("${LOADER_PIDS[@]}")
log "opening $N $TRANSPORT connections per node with $k load process(es) ..."
for ((t = 0; t < budget * 10; t++)); do
	ready=$(find "$RUN" -maxdepth 1 -name 'ready-*' ! -name '*.tmp' | wc -l)
	((ready == k)) && break
	sleep 0.1
done
((ready == k)) || {
	log "only $ready of $k load processes ready after ${budget}s"
	exit 1
}
opened=$(cat "$RUN"/ready-* | awk '{ s += $1 } END { print s }')
settle
rss1=$(rss_kb) heap1=$(metric go_memstats_heap_inuse_bytes) stack1=$(metric go_memstats_stack_inuse_bytes)
gor1=$(metric go_goroutines)
log "$opened open; RSS $((rss0 / 1024)) -> $((rss1 / 1024)) MB; idling ${HOLD}s (RATE=$RATE msg/s) ..."

c0=$(cpu_ticks "${NODE_PIDS[@]}")
t0=$(date +%s.%N)
published=0
if [[ $RATE != 0 ]]; then
	gap=$(awk -v r="$RATE" 'BEGIN { print 1 / r }')
	count=$(awk -v r="$RATE" -v h="$HOLD" 'BEGIN { printf "%d", r * h }')
	posts=()
	for ((m = 0; m < count; m++)); do
		# the payload is the send time (Unix ns): the load tool measures latency from it;
		# each POST in the background, so that a slow answer does not slow the rate
		curl -sS -o /dev/null -w '%{http_code}\n' --max-time 20 --data-binary "$(date +%s%N)" \
			"http://127.0.0.1:${PORTS[0]}/ws" >>"$RUN/posts" 2>&1 &
		posts+=($!)
		sleep "$(awk -v g="$gap" -v t0="$t0" -v m="$m" -v now="$(date +%s.%N)" 'BEGIN { d = t0 + (m + 1) * g - now; print (d > 0 ? d : 0) }')"
	done
	for pid in "${posts[@]}"; do wait "$pid" || true; done
	published=$(grep -c '^200$' "$RUN/posts" || true)
else
	sleep "$HOLD"
fi
c1=$(cpu_ticks "${NODE_PIDS[@]}")
window=$(awk -v t0="$t0" -v now="$(date +%s.%N)" 'BEGIN { printf "%.1f", now - t0 }')
rss2=$(rss_kb)
if [[ $RATE != 0 ]]; then
	log "draining ${DRAIN}s for the deliveries still on their way ..."
	sleep "$DRAIN"
fi

# SIGTERM ends a load process's -hold: it closes its connections and reports.
kill -TERM "${LOADER_PIDS[@]}" 2>/dev/null || true
for pid in "${LOADER_PIDS[@]}"; do wait "$pid" || log "load process $pid: exit $?"; done
# The closed connections leave sockets on ephemeral ports that a server may
# want to listen on next (a test suite's node bound to :PORT failed so right
# after a 90,000-connection run): wait until only TIME-WAIT ones remain.
closing() { ss -Htan | awk '$1 != "TIME-WAIT" && $4 ~ /^127\.0\.0\.([2-9]|[1-9][0-9]+):/' | grep -q .; }
for ((t = 0; t < 1200; t++)); do
	closing || break
	sleep 0.1
done
closing && log "sockets of the load processes still closing after 120 s"
touch "$RESULTS.jsonl"
cat "$RUN"/loader-*.json >>"$RESULTS.jsonl"

# The loaders' lines: sums, the worst loader's p99 (quantiles do not add)
# and the last delivery (ms).
read -r disc stamped p99 last < <(cat "$RUN"/loader-*.json | awk '
	{ for (i = 1; i <= NF; i++) {
		if ($i ~ /^"disconnects":/) { split($i, a, ":"); d += a[2] }
		if ($i ~ /^"stamped":/) { split($i, a, ":"); s += a[2] }
		if ($i ~ /^"latency_p99_ms":/) { split($i, a, ":"); if (a[2] > p) p = a[2] }
		if ($i ~ /^"last_message_unix_ms":/) { split($i, a, ":"); if (a[2] > l) l = a[2] }
	} } END { printf "%d %d %.0f %d\n", d, s, p, l }' FS=,)

per() { awk -v a="$1" -v b="$2" -v n="$opened" -v u="$3" 'BEGIN { printf "%.2f", (b - a) / u / n }'; }
kb=$(per "$rss0" "$rss1" 1)
heap=$(per "$heap0" "$heap1" 1024)
stack=$(per "$stack0" "$stack1" 1024)
gor=$(per "$gor0" "$gor1" 1)
cpu=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v w="$window" -v n="$NODES" 'BEGIN { printf "%.1f", t / hz / w / n * 100 }')
fan="–"
if ((published > 0)); then
	# deliveries/s: from the first publish to the last delivery
	fan="$stamped of $published × $opened; $(awk -v s="$stamped" -v t0="$t0" -v l="$last" 'BEGIN { printf "%.0f", s / (l / 1000 - t0) }')/s; p99 $p99 ms"
fi

MD=$RESULTS.md
if [[ ! -s $MD ]]; then
	{
		echo "# redis_ws idle connections at scale"
		echo
		echo "Written by \`bench/idle.sh\`, one row per run. RSS per connection = (the nodes' VmRSS with the connections" \
			"open − before) / connections; heap and stacks the same from go_memstats_heap_inuse_bytes and" \
			"go_memstats_stack_inuse_bytes (admin /metrics); CPU = the nodes' user+system time over the idle window, per node" \
			"(100% = one core). Fan-out: messages received with a send time / published × connections, deliveries/s over" \
			"the first publish to the last delivery (the tool waits DRAIN s after the last publish), the worst load process's p99. Nodes, Redis and load processes share the machine (loopback)."
		echo
		echo "| run | transport | nodes × conns | open | RSS MB before → after | KB/conn | heap KB/conn | stacks KB/conn | goroutines/conn | node CPU idle | fan-out: received of sent × conns; deliveries/s; p99 | closed while idle | command |"
		echo "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"
	} >"$MD"
fi
echo "| $(date -u '+%Y-%m-%d %H:%M') $(git rev-parse --short HEAD)${LABEL:+ $LABEL} | $TRANSPORT | $NODES × $N | $opened |" \
	"$((rss0 / 1024)) → $((rss1 / 1024)) (end $((rss2 / 1024))) | $kb | $heap | $stack | $gor | $cpu% | $fan | $disc | \`$COMMAND\` |" >>"$MD"
log "wrote $RESULTS.jsonl and $MD"
tail -1 "$MD" >&2
