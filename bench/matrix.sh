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

NAME=matrix
source "$(dirname "$0")/lib.sh"

SUBS=${SUBS:-1000}
PUBS=${PUBS:-2}
SIZE=${SIZE:-64}
RATES=${RATES:-"100 1000 5000"}
DURATION=${DURATION:-10s}
DRAIN=${DRAIN:-5s}
CONNS=${CONNS:-2000}
RESULTS=${RESULTS:-bench/results}

build
free_port REDIS_PORT 6390
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
	}
}
CADDY

free_port P1 8401
free_port P2 8402
free_port A1 2401
free_port A2 2402
URLS="ws://127.0.0.1:$P1/ws,ws://127.0.0.1:$P2/ws"
ADMINS="http://127.0.0.1:$A1,http://127.0.0.1:$A2"

OUT=$RESULTS.jsonl
MD=$RESULTS.md
: >"$OUT"

start_nodes "$RUN/Caddyfile" /ws
for rate in $RATES; do
	log "fanout: $SUBS subs, $PUBS pubs, $SIZE B, $rate msg/s, $DURATION"
	"$BIN/redisws-bench" fanout -urls "$URLS" -subs "$SUBS" -pubs "$PUBS" -size "$SIZE" \
		-rate "$rate" -duration "$DURATION" -drain "$DRAIN" \
		-pids "$(node_pids)" >>"$OUT"
	sleep 1
done

# Idle-connection cost on fresh nodes: after a fanout run the nodes' heaps have
# grown and freed memory gets reused, which would understate the cost.
stop_nodes
start_nodes "$RUN/Caddyfile" /ws
sleep 1
log "conns: $CONNS idle connections"
"$BIN/redisws-bench" conns -urls "$URLS" -conns "$CONNS" \
	-pids "$(node_pids)" -admin "$ADMINS" >>"$OUT"

{
	echo "# redis_ws load matrix"
	echo
	echo "$(header_line)" "2 Caddy nodes + 1 redis-server + the load tool on the same machine (loopback)."
	echo "Deliveries/s = received deliveries / (last receipt − first send); loss counted at the end of the drain" \
		"(at most $DRAIN after the last send); latency = receive − send time of each delivery." \
		"Node RSS = sum of both Caddy processes' VmRSS."
	echo
	"$BIN/redisws-bench" table "$OUT"
} >"$MD"
log "wrote $OUT and $MD"
cat "$MD" >&2
