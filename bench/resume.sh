#!/usr/bin/env bash
# Resume storm: every client of a route with history comes back at once with
# ?since= after missing BEHIND messages. Builds Caddy (with redis_ws) and the
# load tool, starts one redis-server and two Caddy nodes whose route has
# `history 1000`, then runs `redisws-bench resume`: CLIENTS envelope clients
# (subprotocol redis_ws.v1) spread over both nodes note their position (the
# subscribed frame) and close, one publisher sends BEHIND messages (recorded),
# then all CLIENTS reconnect at once with since=<epoch>:<offset>; the tool
# checks that each gets exactly the offsets after its own, in order, with the
# data published at each, then one live message published once all caught up.
# CPU during the storm (reconnect → every client has the live message): the
# nodes' and redis-server's utime+stime from /proc/PID/stat, read by the tool;
# Redis's INFO cpu (used_cpu_sys + used_cpu_user) before and after the whole
# tool run as well. Fresh nodes and an emptied Redis for each of REPEAT runs.
# Writes bench/resume-results.jsonl and bench/resume-results.md. Loopback
# only; everything it starts is stopped on exit. Wall time: about 30 s per run.
#
# Environment knobs: CLIENTS=2000 BEHIND=100 SIZE=64 HISTORY=1000 REPEAT=2
#   WAIT=30s (bound of each wait of the tool) RESULTS=bench/resume-results
set -euo pipefail
NAME=resume
source "$(dirname "$0")/lib.sh"

CLIENTS=${CLIENTS:-2000}
BEHIND=${BEHIND:-100}
SIZE=${SIZE:-64}
HISTORY=${HISTORY:-1000}
REPEAT=${REPEAT:-2}
WAIT=${WAIT:-30s}
RESULTS=${RESULTS:-bench/resume-results}

build
free_port REDIS_PORT 6790
log "starting redis-server on 127.0.0.1:$REDIS_PORT"
start_redis "$REDIS_PORT"
REDIS_PID=${PIDS[-1]}
export REDIS_PORT HISTORY

cat >"$RUN/Caddyfile" <<'CADDY'
{
	admin 127.0.0.1:{$ADMIN_PORT}
	persist_config off
}
:{$PORT} {
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		history {$HISTORY}
	}
}
CADDY

free_port P1 8801
free_port P2 8802
free_port A1 2801
free_port A2 2802
URLS="ws://127.0.0.1:$P1/ws,ws://127.0.0.1:$P2/ws"

redis_cpu() { redis-cli -p "$REDIS_PORT" info cpu | tr -d '\r' | awk -F: '$1 == "used_cpu_sys" || $1 == "used_cpu_user" { s += $2 } END { printf "%.2f", s }'; }
# jfield KEY: a field of the last JSON line of $OUT
jfield() { tail -1 "$OUT" | grep -o "\"$1\":[^,}]*" | head -1 | cut -d: -f2- | tr -d '"'; }

OUT=$RESULTS.jsonl
MD=$RESULTS.md
: >"$OUT"
ROWS=()
for ((rep = 1; rep <= REPEAT; rep++)); do
	redis-cli -p "$REDIS_PORT" flushall >/dev/null
	start_nodes "$RUN/Caddyfile" /ws
	r0=$(redis_cpu) load=$(cut -d' ' -f1 /proc/loadavg)
	log "resume #$rep: $CLIENTS clients, $BEHIND behind, $SIZE B"
	rc=0
	"$BIN/redisws-bench" resume -urls "$URLS" -subs "$CLIENTS" -behind "$BEHIND" -size "$SIZE" \
		-duration "$WAIT" -connect-rate 1000 -pids "$(node_pids),$REDIS_PID" >>"$OUT" || rc=$?
	r1=$(redis_cpu)
	cpu=$(tail -1 "$OUT" | grep -o '"storm_cpu_s":\[[^]]*\]' | sed 's/.*\[//; s/\]//' || true)
	IFS=, read -r n1 n2 rs <<<"$cpu"
	ROWS+=("| #$rep (load $load) | $(jfield clients) | $(jfield behind) | $(jfield storm_connected) | $(jfield connect_p99_ms) | $(jfield caught_up) | **$(jfield all_caught_up_ms)** | $(jfield caught_up_p50_ms) / $(jfield caught_up_p99_ms) | $(jfield replay_p50_ms) / $(jfield replay_p99_ms) | $(jfield live) | **$(jfield all_live_ms)** | $(jfield live_after_send_ms) | $(jfield replayed_frames) | $(jfield errors) | $(jfield storm_s) | ${n1:-?} + ${n2:-?} | ${rs:-?} | $(awk -v a="$r0" -v b="$r1" 'BEGIN { printf "%.2f", b - a }') |")
	log "resume #$rep (exit $rc): ${ROWS[-1]}"
	stop_nodes
	sleep 1
done

{
	echo "# redis_ws resume storm"
	echo
	echo "$(header_line)" "2 Caddy nodes (\`history $HISTORY\`) + 1 redis-server + the load tool on the same machine (loopback)."
	echo "$CLIENTS envelope clients (subprotocol redis_ws.v1), half on each node, note their position and close; one publisher" \
		"on node 1 sends $BEHIND messages of $SIZE B (recorded: offsets since+1..since+$BEHIND); then all $CLIENTS reconnect at once" \
		"(at most 2,048 handshakes in flight) with \`?since=<epoch>:<offset>\`. Caught up = a client has every offset after its own," \
		"each once, in order, with the data published at it, after a subscribed frame with recovered:true, the same epoch and the" \
		"latest offset (replay after own handshake: from the end of that client's handshake); live = it then has the one message published once all had caught up. Times from the start of the" \
		"reconnect. Errors = gaps, duplicates, wrong data or epoch, not recovered, failed handshakes, clients that did not finish." \
		"CPU s during the storm (reconnect → all live, storm s) from /proc/PID/stat; Redis INFO cpu = used_cpu_sys + used_cpu_user" \
		"over the whole tool run (the first connect and the publishing included). Each run on fresh nodes and an emptied Redis;" \
		"load = the machine's 1-min load average as it started."
	echo
	echo "| run | clients | behind | reconnected | handshake p99 ms | caught up | all caught up ms | caught up p50 / p99 ms | replay after own handshake p50 / p99 ms | live | all live ms | live: send → all ms | offsets received | errors | storm s | nodes CPU s | Redis CPU s (storm) | Redis CPU s (INFO, whole run) |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	printf '%s\n' "${ROWS[@]}"
} >"$MD"
log "wrote $OUT and $MD"
cat "$MD" >&2
