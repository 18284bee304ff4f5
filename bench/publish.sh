#!/usr/bin/env bash
# Publish path: how many client frames per second one node gets into Redis.
# Builds Caddy (with redis_ws) and the load tool, starts one redis-server and a
# node whose route publishes to "sink" and subscribes to a quiet channel (so
# nothing comes back), then PUBS connections send SIZE-byte frames as fast as
# they can for DURATION. Counts what Redis executed (INFO commandstats,
# cmdstat_publish) once the node's outbox has drained. Writes
# bench/publish-results.md. Loopback only; everything is stopped on exit.
#
# With history (HISTORY=1000: `history 1000` on the route) every frame goes
# through the recording script (one EVALSHA per run of up to 64 frames), and
# the run also counts what was recorded: the channel's last offset (HGET
# redis_ws:{sink}:m o), the XADDs and PUBLISHes the scripts ran, and the
# stream's length and first and last entry IDs; "exactly once" = last offset =
# XADDs = PUBLISHes = frames the load tool sent, and the stream holds offsets
# o-len+1..o with no hole.
#
# HISTORY and RATES are lists: for each rate, each history in its order, on
# fresh nodes and an emptied Redis, one table row each; HISTORY="off 1000 off
# 1000" compares both in one session. RATES: "max" = as fast as they can (the
# node drops frames that wait over 1 s for room in its outbox: dropped, from
# its caddy_redis_ws_publish_dropped_total), or frames/s in all, paced.
# Wall time: about DURATION + 10 s per run, more while the senders are ahead
# of Redis (the node reads their socket buffers: at most DRAIN).
#
# Environment knobs: PUBS=100 SIZE=64 DURATION=10s HISTORY=off RATES=max
#   DRAIN=300s (longest wait for the node to read what was sent) RESULTS=bench/publish-results
set -euo pipefail
NAME=publish
source "$(dirname "$0")/lib.sh"

PUBS=${PUBS:-100}
SIZE=${SIZE:-64}
DURATION=${DURATION:-10s}
HISTORY=${HISTORY:-off}
DRAIN=${DRAIN:-300s}
RATES=${RATES:-max}
RESULTS=${RESULTS:-bench/publish-results}

build
free_port REDIS_PORT 6690
start_redis "$REDIS_PORT"
export REDIS_PORT
free_port P1 8701
free_port P2 8702
free_port A1 2701
free_port A2 2702

rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
# cmdstat NAME: calls of a command so far (commands run by scripts included)
cmdstat() { rcli info commandstats | awk -F'[:=,]' -v c="cmdstat_$1" '$1 == c { print $3; f = 1 } END { if (!f) print 0 }'; }
redis_cpu() { rcli info cpu | tr -d '\r' | awk -F: '$1 == "used_cpu_sys" || $1 == "used_cpu_user" { s += $2 } END { printf "%.2f", s }'; }

# node_metric NAME: a counter of node 1, summed over its labels
node_metric() { curl -fsS "http://127.0.0.1:$A1/metrics" | awk -v m="caddy_redis_ws_$1" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%d", s }'; }
dropped() { node_metric publish_dropped_total; }
received() { node_metric frames_received_total; }

LOAD0=$(cut -d' ' -f1 /proc/loadavg)
ROWS=()
RUNS=() # each rate with each history, in order
for rate in $RATES; do for hist in $HISTORY; do RUNS+=("$rate $hist"); done; done
for run in "${RUNS[@]}"; do
	read -r rate hist <<<"$run"
	pace=()
	[[ $rate == max ]] || pace=(-rate "$rate")
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
	rcli flushall >/dev/null
	start_nodes "$RUN/Caddyfile" /pub
	rcli config resetstat >/dev/null
	node_cpu0=$(cpu_ticks "${NODE_PIDS[0]}")
	redis_cpu0=$(redis_cpu)
	log "publish: $PUBS connections to node 1, $SIZE B frames, $DURATION, rate $rate, history $hist"
	"$BIN/redisws-bench" publish -json -urls "ws://127.0.0.1:$P1/pub" -pubs "$PUBS" -size "$SIZE" -duration "$DURATION" -drain "$DRAIN" "${pace[@]}" >"$RUN/publish.json"
	tool_end=$(date +%s.%N)
	# The tool returns once the node has read every frame and closed; its
	# outbox may still be publishing: wait until published + dropped = received.
	for ((i = 0; i < 600; i++)); do # at most 60 s
		n=$(cmdstat publish)
		(($(received) <= n + $(dropped))) && break
		sleep 0.1
	done
	stop=$(date +%s.%N)
	node_cpu=$(ticks_s $(($(cpu_ticks "${NODE_PIDS[0]}") - node_cpu0)))
	redis_cpu_s=$(awk -v a="$redis_cpu0" -v b="$(redis_cpu)" 'BEGIN { printf "%.1f", b - a }')
	sent=$(sed 's/.*"sent":\([0-9]*\).*/\1/' "$RUN/publish.json")
	send_errors=$(sed 's/.*"send_errors":\([0-9]*\).*/\1/' "$RUN/publish.json")
	drops=$(dropped) recv=$(received)
	unclosed=$(sed 's/.*"unclosed":\([0-9]*\).*/\1/' "$RUN/publish.json")
	((unclosed == 0)) || log "history $hist: $unclosed connections not closed by the node within DRAIN=$DRAIN"
	# the tool's send window and drain (until the node had read everything), then the outbox's
	send_s=$(sed 's/.*"duration_s":\([0-9.]*\).*/\1/' "$RUN/publish.json")
	drain_s=$(sed 's/.*"drain_s":\([0-9.]*\).*/\1/' "$RUN/publish.json")
	secs=$(awk -v d="$send_s" -v r="$drain_s" -v a="$tool_end" -v b="$stop" 'BEGIN { printf "%.2f", d + r + b - a }')
	pubrate=$(awk -v n="${n:-0}" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
	if [[ $hist == off ]]; then
		ROWS+=("| $rate | off | $PUBS | $SIZE B | $sent | $recv | $drops | $n | – | – | – | – | $pubrate | – | $node_cpu | $redis_cpu_s |")
	else
		evalsha=$(cmdstat evalsha)
		xadd=$(cmdstat xadd)
		o=$(rcli hget 'redis_ws:{sink}:m' o)
		xlen=$(rcli xlen 'redis_ws:{sink}:s')
		first=$(rcli --raw xrange 'redis_ws:{sink}:s' - + count 1 | head -1)
		lastid=$(rcli --raw xrevrange 'redis_ws:{sink}:s' + - count 1 | head -1)
		window="no"
		# The script trims approximately (whole stream nodes of up to 100
		# entries): at least the last min(size, o) offsets, contiguous.
		[[ $first == "$((o - xlen + 1))-0" && $lastid == "$o-0" && $xlen -ge $((o < hist ? o : hist)) && $xlen -le $((hist + 100)) ]] && window="yes"
		once="no"
		if [[ $xadd == "$o" && $n == "$o" && $window == yes ]]; then
			if [[ $o == "$sent" ]]; then
				once="every frame sent, once"
			elif ((o == recv - drops)); then
				once="once, but $((sent - o)) not recorded"
			fi
		fi
		per_call=$(awk -v a="$xadd" -v b="$evalsha" 'BEGIN { printf "%.1f", b ? a / b : 0 }')
		recorded_rate=$(awk -v n="$o" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
		ROWS+=("| $rate | $hist | $PUBS | $SIZE B | $sent | $recv | $drops | $n | $o | $xadd | $evalsha ($per_call frames each) | $xlen, ids $first..$lastid ($window) | $pubrate | **$recorded_rate** ($once) | $node_cpu | $redis_cpu_s |")
	fi
	((send_errors == 0)) || log "history $hist: $send_errors connections ended with a write error (their whole frames are counted in sent)"
	log "history $hist: ${ROWS[-1]}"
	stop_nodes
	sleep 1
done

{
	echo "# redis_ws publish path: client frames into Redis from one node"
	echo
	echo "$(header_line) Load average (1 min) at the start: $LOAD0, at the end: $(cut -d' ' -f1 /proc/loadavg)."
	echo "$PUBS WebSocket connections to one node send $SIZE-byte text frames for $DURATION, as fast as they can (rate max) or paced to a total rate (the load tool writes 256 pre-masked frames per write); the node publishes each frame to Redis through its pipelining outbox. Published = PUBLISH calls Redis executed (INFO commandstats, the recording script's included); the tool closes each connection after its send window and waits until the node has read everything and closed; received and dropped = the node's \`caddy_redis_ws_frames_received_total\` and \`caddy_redis_ws_publish_dropped_total\` (a frame waits at most 1 s for room in the outbox); per second = over the send window, the node's reading of what was still in the sockets, and its outbox's last publishes (until published + dropped = received). Each row: fresh node, emptied Redis, in the order run."
	echo "With history (\`history <size>\` on the route): recorded = the channel's last offset (\`HGET redis_ws:{sink}:m o\`); XADD and EVALSHA = calls Redis executed; the stream's length and first..last entry IDs, (yes) when they are the last offsets, contiguous, at least min(size, o) of them and at most size + 100 (the script trims whole stream nodes); recorded/s with \"every frame sent, once\" when last offset = XADDs = PUBLISHes = frames sent and the stream window holds (so offsets 1..o, each once); \"once, but N not recorded\" when the same holds for the frames the node did not drop."
	echo
	echo "| rate | history | connections | size | frames sent | received by the node | dropped by the node | published to Redis | recorded (last offset) | XADD | EVALSHA | stream | published/s | recorded/s (exactly once) | node CPU s | Redis CPU s |"
	echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"
	printf '%s\n' "${ROWS[@]}"
} >"$RESULTS.md"
cat "$RESULTS.md"
