#!/usr/bin/env bash
# Publish path: how many client frames per second one node gets into Redis.
# Builds Caddy (with redis_ws) and the load tool, starts one redis-server and a
# node whose route publishes to "sink" and subscribes to a quiet channel (so
# nothing comes back), then PUBS connections send SIZE-byte frames as fast as
# they can for DURATION. Counts what Redis executed (INFO commandstats,
# cmdstat_publish) once the node's outbox has drained. Writes
# bench/publish-results.md. Loopback only; everything is stopped on exit.
#
# Environment knobs: PUBS=100 SIZE=64 DURATION=10s RESULTS=bench/publish-results
set -euo pipefail
NAME=publish
source "$(dirname "$0")/lib.sh"

PUBS=${PUBS:-100}
SIZE=${SIZE:-64}
DURATION=${DURATION:-10s}
RESULTS=${RESULTS:-bench/publish-results}

build
free_port REDIS_PORT 6690
start_redis "$REDIS_PORT"
export REDIS_PORT
cat >"$RUN/Caddyfile" <<'CADDY'
{
	admin 127.0.0.1:{$ADMIN_PORT}
	persist_config off
}
:{$PORT} {
	redis_ws /pub {
		subscribe quiet
		publish sink
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
}
CADDY
free_port P1 8701
free_port P2 8702
free_port A1 2701
free_port A2 2702
start_nodes "$RUN/Caddyfile" /pub

publishes() { redis-cli -p "$REDIS_PORT" info commandstats | awk -F'[:=,]' '/^cmdstat_publish:/ { print $3 }'; }
redis-cli -p "$REDIS_PORT" config resetstat >/dev/null
node_cpu0=$(cpu_ticks "${NODE_PIDS[0]}")
start=$(date +%s.%N)
log "publish: $PUBS connections to node 1, $SIZE B frames, $DURATION"
"$BIN/redisws-bench" publish -json -urls "ws://127.0.0.1:$P1/pub" -pubs "$PUBS" -size "$SIZE" -duration "$DURATION" >"$RUN/publish.json"
# The outbox may still be publishing: wait until the count stops moving.
last=-1 n=$(publishes)
for ((i = 0; i < 100 && n != last; i++)); do
	last=$n
	sleep 0.5
	n=$(publishes)
done
stop=$(date +%s.%N)
node_cpu=$(ticks_s $(($(cpu_ticks "${NODE_PIDS[0]}") - node_cpu0)))
sent=$(sed 's/.*"sent":\([0-9]*\).*/\1/' "$RUN/publish.json")
secs=$(awk -v a="$start" -v b="$stop" 'BEGIN { printf "%.2f", b - a - 0.5 }')
rate=$(awk -v n="${n:-0}" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')

{
	echo "# redis_ws publish path: client frames into Redis from one node"
	echo
	header_line
	echo "$PUBS WebSocket connections to one node send $SIZE-byte text frames as fast as they can for $DURATION (the load tool writes 256 pre-masked frames per write); the node publishes each frame to Redis through its pipelining outbox. Published = PUBLISH calls Redis executed (INFO commandstats); per second = over the time until that count stopped moving."
	echo
	echo "| connections | size | frames sent | published to Redis | published/s | node CPU s |"
	echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
	echo "| $PUBS | $SIZE B | $sent | ${n:-0} | $rate | $node_cpu |"
} >"$RESULTS.md"
cat "$RESULTS.md"
