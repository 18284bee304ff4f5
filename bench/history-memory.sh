#!/usr/bin/env bash
# Redis memory of a route's history: builds Caddy (with redis_ws) and the load
# tool, starts one redis-server and one node whose route records every client
# frame (`history HISTORY`; /m/<ch> subscribes and publishes channel <ch>), then
# fills CHANNELS channels with MESSAGES frames of SIZE bytes each through the
# node (one paced publisher per channel, so nothing is dropped), and measures
# each channel's keys with MEMORY USAGE ... SAMPLES 0 (every entry counted):
# the stream redis_ws:{<ch>}:s (trimmed to HISTORY entries) and the meta hash
# redis_ws:{<ch>}:m, plus used_memory before and after. Writes
# bench/history-memory-results.md. Loopback only; everything it starts is
# stopped on exit. Wall time: about 30 s.
#
# Environment knobs: CHANNELS=10 MESSAGES=1500 SIZE=64 HISTORY=1000 RATE=20000
#   RESULTS=bench/history-memory-results
set -euo pipefail
NAME=history-memory
source "$(dirname "$0")/lib.sh"

CHANNELS=${CHANNELS:-10}
MESSAGES=${MESSAGES:-1500}
SIZE=${SIZE:-64}
HISTORY=${HISTORY:-1000}
RATE=${RATE:-20000}
RESULTS=${RESULTS:-bench/history-memory-results}

build
free_port REDIS_PORT 6890
start_redis "$REDIS_PORT"
export REDIS_PORT HISTORY
cat >"$RUN/Caddyfile" <<'CADDY'
{
	admin 127.0.0.1:{$ADMIN_PORT}
	persist_config off
}
:{$PORT} {
	redis_ws /m/* {
		subscribe {http.request.uri.path.1}
		publish {http.request.uri.path.1}
		redis redis://127.0.0.1:{$REDIS_PORT}
		history {$HISTORY}
	}
}
CADDY
free_port P1 8901
free_port P2 8902
free_port A1 2901
free_port A2 2902
start_nodes "$RUN/Caddyfile" /m/probe
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
used_memory() { rcli info memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'; }
rcli flushall >/dev/null
mem0=$(used_memory)

# One paced publisher per channel, all at once: CHANNELS × MESSAGES frames.
secs=$(awk -v m="$MESSAGES" -v r="$RATE" -v c="$CHANNELS" 'BEGIN { printf "%.3f", m * c / r }')
log "filling $CHANNELS channels with $MESSAGES frames of $SIZE B each ($RATE frames/s in all, ${secs}s)"
pids=()
for ((i = 0; i < CHANNELS; i++)); do
	# one connection per channel, RATE/CHANNELS frames/s, for MESSAGES frames
	# (the tool sends whole batches of 256: rounded up below, and checked)
	"$BIN/redisws-bench" publish -json -urls "ws://127.0.0.1:$P1/m/c$i" -pubs 1 -size "$SIZE" \
		-rate "$(awk -v r="$RATE" -v c="$CHANNELS" 'BEGIN { print r / c }')" -duration "${secs}s" >"$RUN/fill-$i.json" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
sleep 1
ROWS=()
total_s=0 total_m=0
for ((i = 0; i < CHANNELS; i++)); do
	ch="c$i"
	sent=$(sed 's/.*"sent":\([0-9]*\).*/\1/' "$RUN/fill-$i.json")
	wait_until 10 test "$(rcli hget "redis_ws:{$ch}:m" o)" = "$sent" || log "$ch: last offset $(rcli hget "redis_ws:{$ch}:m" o), sent $sent"
	o=$(rcli hget "redis_ws:{$ch}:m" o)
	xlen=$(rcli xlen "redis_ws:{$ch}:s")
	ms=$(rcli memory usage "redis_ws:{$ch}:s" samples 0)
	mm=$(rcli memory usage "redis_ws:{$ch}:m" samples 0)
	total_s=$((total_s + ms)) total_m=$((total_m + mm))
	ROWS+=("| $ch | $sent | $o | $xlen | $ms | $mm | $((ms + mm)) | $(awk -v b="$((ms + mm))" -v n="$xlen" 'BEGIN { printf "%.1f", b / n }') |")
done
mem1=$(used_memory)
keys=$(rcli dbsize)
enc=$(rcli object encoding "redis_ws:{c0}:s")
info=$(rcli xinfo stream "redis_ws:{c0}:s" | tr -d '\r' | paste -sd' ' | grep -o 'length [0-9]* radix-tree-keys [0-9]* radix-tree-nodes [0-9]*' || true)
cfg=$(rcli config get stream-node-max-entries | tail -1)/$(rcli config get stream-node-max-bytes | tail -1)

{
	echo "# redis_ws history: Redis memory per channel"
	echo
	echo "$(header_line)" "$(redis-server --version | cut -d' ' -f1-3), one Caddy node, route \`history $HISTORY\`."
	echo "$CHANNELS channels, each filled through the node by one WebSocket publisher with $SIZE-byte frames (paced, $RATE frames/s in all," \
		"so that no frame is dropped; the tool sends batches of 256, so a channel gets a multiple of 256 frames), enough for the stream" \
		"to be trimmed to its $HISTORY entries (XADD MAXLEN, exact). Bytes from \`MEMORY USAGE <key> SAMPLES 0\` (all entries counted):" \
		"the stream \`redis_ws:{<ch>}:s\` and the meta hash \`redis_ws:{<ch>}:m\` (epoch, last offset); per message = both / entries in the stream."
	echo "Stream encoding: $enc, c0: $info; stream-node-max-entries/bytes $cfg."
	echo
	echo "| channel | frames sent | last offset | stream entries | stream bytes | meta bytes | bytes per channel | bytes per message |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	printf '%s\n' "${ROWS[@]}"
	echo "| all $CHANNELS | | | | $total_s | $total_m | $((total_s + total_m)) | |"
	echo
	echo "Redis used_memory: $mem0 bytes before filling, $mem1 after, $keys keys: $(((mem1 - mem0) / CHANNELS)) bytes per channel" \
		"($(awk -v d="$((mem1 - mem0))" -v c="$CHANNELS" -v h="$HISTORY" 'BEGIN { printf "%.1f", d / c / h }') per message of history), key overhead and allocator included."
} >"$RESULTS.md"
cat "$RESULTS.md"
