#!/usr/bin/env bash
# HTTP publish path: POST <route URL> publishes the request body as one
# message and is answered 200 once Redis took it. Builds Caddy (with redis_ws)
# and the load tool, starts its own redis-server and one node whose route
# publishes to "sink" and subscribes to a quiet channel, then runs the load
# tool's post mode: CLIENTS keep-alive HTTP clients (each its own connection)
# POST SIZE-byte bodies one after the other, as fast as they are answered (or
# paced to RATE in all) for DURATION. Checks what reached Redis against the
# 200s the tool counted: PUBLISH calls executed (INFO commandstats, scripts'
# included), and with history (`history <size>` on the route) the channel's
# last offset (HGET redis_ws:{sink}:m o) and XADDs, which must equal the 200s,
# with the offsets the 200 bodies named being exactly 1..o. Writes
# $RESULTS.md and $RESULTS.jsonl. Loopback only; everything is stopped on exit.
#
# HISTORY and CLIENTS are lists: for each history, each client count, in
# their order, on a fresh node and an emptied Redis, one table row each.
# Wall time: about DURATION + 5 s per run.
#
# Environment knobs: CLIENTS="1 50" HISTORY="off 1000" SIZE=64 DURATION=10s
#   RATE= (empty: as fast as answered; else requests/s in all, paced)
#   RESULTS=bench/post-results
set -euo pipefail
NAME=post
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || { echo "bench: jq is missing (apt-get install jq)" >&2; exit 1; }

CLIENTS=${CLIENTS:-"1 50"}
HISTORY=${HISTORY:-"off 1000"}
SIZE=${SIZE:-64}
DURATION=${DURATION:-10s}
RATE=${RATE:-}
RESULTS=${RESULTS:-bench/post-results}

build
free_port REDIS_PORT 6790
start_redis "$REDIS_PORT"
export REDIS_PORT
free_port P1 8801
free_port A1 2801

rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
# cmdstat NAME: calls of a command so far (commands run by scripts included)
cmdstat() { rcli info commandstats | awk -F'[:=,]' -v c="cmdstat_$1" '$1 == c { print $3; f = 1 } END { if (!f) print 0 }'; }
redis_cpu() { rcli info cpu | tr -d '\r' | awk -F: '$1 == "used_cpu_sys" || $1 == "used_cpu_user" { s += $2 } END { printf "%.2f", s }'; }
# node_posts CODE: the node's caddy_redis_ws_http_publishes_total for that code (0 when absent)
node_posts() {
	{ curl -fsS "http://127.0.0.1:$A1/metrics" 2>/dev/null || true; } |
		awk -v c="code=\"$1\"" 'index($1, "caddy_redis_ws_http_publishes_total{") == 1 && index($1, c) { s += $NF } END { printf "%d", s }'
}

j() { jq -r "$1" "$RUN/post.json"; } # j FILTER: from the run's JSON line

pace=()
[[ -z $RATE ]] || pace=(-rate "$RATE")
OUT=$RESULTS.jsonl
: >"$OUT"
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
ROWS=()
CHECKS_FAILED=0
n=0
for hist in $HISTORY; do
	directive=""
	[[ $hist == off ]] || directive="history $hist"
	cat >"$RUN/Caddyfile" <<CADDY
{
	admin 127.0.0.1:{\$ADMIN_PORT}
	persist_config off
}
:{\$PORT} {
	redis_ws /pub {
		subscribe quiet
		publish sink
		redis redis://127.0.0.1:{\$REDIS_PORT}
		$directive
	}
}
CADDY
	for clients in $CLIENTS; do
		n=$((n + 1))
		rcli flushall >/dev/null
		start_nodes "$RUN/Caddyfile" /pub 1
		rcli config resetstat >/dev/null
		node_cpu0=$(cpu_ticks "${NODE_PIDS[0]}")
		redis_cpu0=$(redis_cpu)
		label="history $hist, $clients client(s) (#$n, load $(cut -d' ' -f1 /proc/loadavg))"
		log "post: $clients client(s) to the node, $SIZE B bodies, $DURATION, rate ${RATE:-max}, history $hist"
		rc=0
		"$BIN/redisws-bench" post -json -label "$label" -urls "http://127.0.0.1:$P1/pub" -pubs "$clients" \
			-size "$SIZE" -duration "$DURATION" "${pace[@]}" >"$RUN/post.json" || rc=$?
		cat "$RUN/post.json" >>"$OUT"
		((rc == 0)) || log "the load tool exited $rc: $(cat "$RUN/post.json")"
		node_cpu=$(ticks_s $(($(cpu_ticks "${NODE_PIDS[0]}") - node_cpu0)))
		redis_cpu_s=$(awk -v a="$redis_cpu0" -v b="$(redis_cpu)" 'BEGIN { printf "%.1f", b - a }')
		req=$(j .requests) ok=$(j .ok) okps=$(j '.ok_per_s | round') errs=$(j .errors)
		others=$(j '(.statuses // {}) | to_entries | map("\(.key) ×\(.value)") | join(", ") | if . == "" then "none" else . end')
		p50=$(j .latency_p50_ms) p99=$(j .latency_p99_ms) pmax=$(j .latency_max_ms) conns=$(j .connections_opened)
		published=$(cmdstat publish)
		node_ok=$(node_posts 200)
		check="no"
		if [[ $hist == off ]]; then
			recorded="–"
			# a 200 is an answer after Redis took the message: every one published, none twice
			[[ $published == "$ok" ]] && check="yes: published = 200s"
		else
			o=$(rcli hget 'redis_ws:{sink}:m' o)
			o=${o:-0}
			xadd=$(cmdstat xadd)
			offs=$(j '"\(.offset_min)..\(.offset_max), \(.offset_duplicates) dup, \(.offset_gaps) gaps"')
			recorded="$o (XADD $xadd; 200s named $offs)"
			if [[ $o == "$ok" && $xadd == "$ok" && $published == "$ok" ]] &&
				[[ $(j '.offset_min == 1 and .offset_duplicates == 0 and .offset_gaps == 0') == true && $(j .offset_max) == "$o" ]]; then
				check="yes: last offset = XADDs = PUBLISHes = 200s, offsets 1..$o once each"
			fi
		fi
		[[ $check == no ]] && CHECKS_FAILED=$((CHECKS_FAILED + 1))
		ROWS+=("| $hist | $clients | $conns | $SIZE B | ${RATE:-max} | $req | $ok | **$okps** | $others | $errs | $p50 | $p99 | $pmax | $published | $recorded | $node_ok | $check | $node_cpu | $redis_cpu_s |")
		log "${ROWS[-1]}"
		stop_nodes
		sleep 1
	done
done

{
	echo "# redis_ws HTTP publish path: POST into Redis from one node"
	echo
	echo "$(header_line) Load average (1 min) at the start: $LOAD0, at the end: $(cut -d' ' -f1 /proc/loadavg)."
	echo "1 Caddy node + 1 redis-server + the load tool on the same machine (loopback). Each client is a keep-alive HTTP/1.1 connection of its own that POSTs a $SIZE-byte body to the route and sends the next one when the answer came (rate max), for $DURATION; the route publishes to \`sink\` and subscribes to a quiet channel. 200/s = 200 answers / (first send → last answer); latency = send → answer read, of the 200s. Published = PUBLISH calls Redis executed (INFO commandstats, the recording script's included); node 200s = the node's \`caddy_redis_ws_http_publishes_total{code=\"200\"}\`. With history (\`history <size>\`): recorded = the channel's last offset (\`HGET redis_ws:{sink}:m o\`), XADD = calls Redis executed, and the offsets the 200 bodies named (\`\"offset\":N\`). Each row: fresh node, emptied Redis, in the order run."
	echo
	echo "| history | clients | TCP connections | size | rate | requests | 200 | 200/s | other answers | errors | p50 ms | p99 ms | max ms | published | recorded | node 200s | checked | node CPU s | Redis CPU s |"
	echo "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: |"
	printf '%s\n' "${ROWS[@]}"
} >"$RESULTS.md"
log "wrote $OUT and $RESULTS.md"
cat "$RESULTS.md"
((CHECKS_FAILED == 0)) || { log "$CHECKS_FAILED run(s) failed the Redis check"; exit 1; }
