#!/usr/bin/env bash
# Slow-client storm: does a crowd of clients that stop reading hurt the others?
# Builds Caddy (with redis_ws) and the load tool, starts one redis-server and
# two Caddy nodes whose route has `send_queue 256KiB`, and runs the same
# fanout twice on fresh nodes: 1,800 subscribers, 2 publishers, 4 KiB
# messages, 100 msg/s, 15 s; first alone, then with 200 more subscribers that
# never read after the handshake (-slow 200); the pair is repeated REPEAT
# times, since the machine's other tenants move the figures. Each slow client
# is offered 400 KB/s, so it fills its socket buffers (about 4 MB on loopback
# here) and its 256 KiB queue after about 10 s. Writes bench/storm-results.jsonl
# and bench/storm-results.md. Everything it starts is stopped on exit.
# Loopback only. Wall time: about 45 s per pair.
#
# Environment knobs (defaults = the standard run):
#   SUBS=1800 SLOW=200 PUBS=2 SIZE=4096 RATE=100 DURATION=15s DRAIN=5s REPEAT=2
#   RESULTS=bench/storm-results   (writes $RESULTS.jsonl and $RESULTS.md)
#   EXTRA="send_buffer 128KiB"     (one more directive on the route)
set -euo pipefail
NAME=storm
source "$(dirname "$0")/lib.sh"

SUBS=${SUBS:-1800}
SLOW=${SLOW:-200}
PUBS=${PUBS:-2}
SIZE=${SIZE:-4096}
RATE=${RATE:-100}
DURATION=${DURATION:-15s}
DRAIN=${DRAIN:-5s}
REPEAT=${REPEAT:-2}
RESULTS=${RESULTS:-bench/storm-results}

build

free_port REDIS_PORT 6590
log "starting redis-server on 127.0.0.1:$REDIS_PORT"
start_redis "$REDIS_PORT"
export REDIS_PORT

cat >"$RUN/Caddyfile" <<'CADDY'
{
	admin 127.0.0.1:{$ADMIN_PORT}
	persist_config off
}
:{$PORT} {
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		send_queue 256KiB
	}
}
CADDY
# EXTRA: one more directive for the route, e.g. EXTRA="send_buffer 128KiB"
if [[ -n ${EXTRA:-} ]]; then
	sed -i "s|send_queue 256KiB|send_queue 256KiB\n\t\t$EXTRA|" "$RUN/Caddyfile"
fi

free_port P1 8601
free_port P2 8602
free_port A1 2601
free_port A2 2602
URLS="ws://127.0.0.1:$P1/ws,ws://127.0.0.1:$P2/ws"

# slow_metric: the nodes' caddy_redis_ws_slow_clients_closed_total, summed
slow_metric() {
	local a
	for a in $A1 $A2; do
		curl -fsS "http://127.0.0.1:$a/metrics" || true
	done | awk '/^caddy_redis_ws_slow_clients_closed_total/ { s += $NF } END { print s + 0 }'
}

# tcp_mem_peak STOPFILE: the highest "TCP: mem" of /proc/net/sockstat (pages,
# whole machine), sampled every 0.5 s until STOPFILE exists (at most 4 min)
tcp_mem_peak() {
	local peak=0 m i
	for ((i = 0; i < 480; i++)); do
		m=$(awk '$1 == "TCP:" { for (j = 2; j < NF; j++) if ($j == "mem") print $(j + 1) }' /proc/net/sockstat)
		((${m:-0} > peak)) && peak=$m
		[[ -e $1 ]] && break
		sleep 0.5
	done
	echo "$peak"
}
PAGE_KB=$(($(getconf PAGESIZE) / 1024))

OUT=$RESULTS.jsonl
MD=$RESULTS.md
: >"$OUT"
METRIC_ROWS=()

for ((rep = 1; rep <= REPEAT; rep++)); do
	for slow in 0 "$SLOW"; do
		start_nodes "$RUN/Caddyfile" /ws
		label="$SUBS subs, $slow slow"
		((REPEAT == 1)) || label+=" (#$rep)"
		log "fanout: $label, $PUBS pubs, $SIZE B, $RATE msg/s, $DURATION"
		tcp_mem_peak "$RUN/stop-$rep-$slow" >"$RUN/tcpmem-$rep-$slow" &
		PIDS+=($!)
		c0=$(cpu_ticks "${NODE_PIDS[@]}")
		"$BIN/redisws-bench" fanout -label "$label" -urls "$URLS" -subs "$SUBS" -slow "$slow" \
			-pubs "$PUBS" -size "$SIZE" -rate "$RATE" -duration "$DURATION" -drain "$DRAIN" \
			-pids "$(node_pids)" >>"$OUT"
		c1=$(cpu_ticks "${NODE_PIDS[@]}")
		touch "$RUN/stop-$rep-$slow"
		wait "${PIDS[-1]}"
		unset 'PIDS[-1]'
		tcp_mb=$(($(cat "$RUN/tcpmem-$rep-$slow") * PAGE_KB / 1024))
		# frames each slow connection had received when the node gave up on it
		frames=$(tail -1 "$OUT" | grep -o '"slow_frames_read":[0-9]*' | cut -d: -f2)
		conns=$(tail -1 "$OUT" | grep -o '"slow_connected":[0-9]*' | cut -d: -f2)
		per="–"
		((conns == 0)) || per=$(awk -v f="$frames" -v n="$conns" -v b="$SIZE" -v r="$RATE" \
			'BEGIN { printf "%.0f (%.1f MB, %.1f s of the stream)", f / n, f * b / n / 1e6, f / n / r }')
		METRIC_ROWS+=("| $label | $(slow_metric) | $per | $tcp_mb MB | $(ticks_s $((c1 - c0))) |")
		stop_nodes
		sleep 1
	done
done

{
	echo "# redis_ws slow-client storm"
	echo
	echo "$(header_line)" \
		"2 Caddy nodes (\`send_queue 256KiB${EXTRA:+; $EXTRA}\`) + 1 redis-server + the load tool on the same machine (loopback)."
	echo "$SUBS subscribers that read, $PUBS publishers, $SIZE B messages at $RATE msg/s in all (each subscriber is offered" \
		"$((RATE * SIZE / 1000)) KB/s), $DURATION, fresh nodes for each run; the second run adds $SLOW subscribers that never read" \
		"after the handshake (not counted in subs, loss or latency). After the drain each slow connection is read until it ends" \
		"(close frame, EOF or reset: closed by the server) or stays quiet for 1 s (still open)." \
		"Deliveries/s = received deliveries / (last receipt − first send); loss counted at the end of the drain" \
		"(at most $DRAIN after the last send); latency = receive − send time of each delivery."
	echo
	"$BIN/redisws-bench" table "$OUT"
	echo "Slow closed = slow connections the server had closed by the end, with how the tool saw each end" \
		"(a close code, eof, reset; timeout = still open). A close frame (1008) can reach a slow client only once it reads" \
		"again, so 1008 means the node was still holding the connection, with the close frame queued behind a blocked write," \
		"when the tool started reading; eof means the node had already closed the TCP connection without a close frame." \
		"The nodes' own count" \
		"(\`caddy_redis_ws_slow_clients_closed_total\`, both nodes, read after the run), the frames the tool read from each slow" \
		"connection at the end (what it had been sent before the node gave up on it), the peak of the kernel's TCP buffer memory" \
		"(\`TCP: mem\` in /proc/net/sockstat, whole machine, sampled every 0.5 s) and the CPU the two nodes used during the run:"
	echo
	echo "| setup | nodes' slow_clients_closed_total | frames per slow connection | peak kernel TCP memory | caddy nodes CPU s |"
	echo "| --- | ---: | ---: | ---: | ---: |"
	printf '%s\n' "${METRIC_ROWS[@]}"
} >"$MD"
log "wrote $OUT and $MD"
cat "$MD" >&2
