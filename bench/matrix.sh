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
#   HISTORY=off             a list, run in its order on fresh nodes and an emptied
#                           Redis: "off" or a size for `history <size>` on the route;
#                           with more than "off" the runs are labelled, e.g.
#                           HISTORY="off 1000 off 1000" RATES=1000 CONNS=0
#   TRANSPORT=ws            a list too, run for each HISTORY in its order, each on fresh
#                           nodes and an emptied Redis: how the subscribers connect, ws
#                           (WebSocket) or sse (Server-Sent Events: GET with Accept:
#                           text/event-stream, one TCP connection each); publishers are
#                           always WebSocket. With more than "ws" the runs are labelled,
#                           e.g. TRANSPORT="ws sse" RATES=1000 CONNS=0 RESULTS=bench/sse-results
#   CONNS=0                 skips the idle-connection run (else on the first HISTORY, WebSocket)
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
HISTORY=${HISTORY:-off}
TRANSPORT=${TRANSPORT:-ws}
RESULTS=${RESULTS:-bench/results}

build
free_port REDIS_PORT 6390
log "starting redis-server on 127.0.0.1:$REDIS_PORT"
start_redis "$REDIS_PORT"
export REDIS_PORT

# caddyfile HISTORY: the route, with `history HISTORY` unless it is "off"
caddyfile() {
	local directive=""
	[[ $1 == off ]] || directive="history $1"
	cat >"$RUN/Caddyfile" <<CADDY
{
	admin 127.0.0.1:{\$ADMIN_PORT}
	persist_config off
}
:{\$PORT} {
	redis_ws /ws chat {
		redis redis://127.0.0.1:{\$REDIS_PORT}
		$directive
	}
}
CADDY
}

free_port P1 8401
free_port P2 8402
free_port A1 2401
free_port A2 2402
URLS="ws://127.0.0.1:$P1/ws,ws://127.0.0.1:$P2/ws"
ADMINS="http://127.0.0.1:$A1,http://127.0.0.1:$A2"

OUT=$RESULTS.jsonl
MD=$RESULTS.md
: >"$OUT"

for transport in $TRANSPORT; do
	[[ $transport == ws || $transport == sse ]] || {
		log "TRANSPORT: $transport is neither ws nor sse"
		exit 2
	}
done

n=0
for hist in $HISTORY; do
	for transport in $TRANSPORT; do
		n=$((n + 1))
		caddyfile "$hist"
		redis-cli -p "$REDIS_PORT" flushall >/dev/null
		start_nodes "$RUN/Caddyfile" /ws
		for rate in $RATES; do
			label=""
			# the machine's 1-min load average as the run starts: other tenants move the figures
			load="#$n, load $(cut -d' ' -f1 /proc/loadavg)"
			if [[ $TRANSPORT != ws ]]; then
				what="WebSocket subscribers"
				[[ $transport == ws ]] || what="SSE subscribers"
				[[ $HISTORY == off ]] || what+=", history $hist"
				label="$what ($load)"
			elif [[ $HISTORY != off ]]; then
				label="history $hist ($load)"
			fi
			log "fanout: $SUBS $transport subs, $PUBS pubs, $SIZE B, $rate msg/s, $DURATION, history $hist"
			"$BIN/redisws-bench" fanout -label "$label" -transport "$transport" -urls "$URLS" -subs "$SUBS" -pubs "$PUBS" \
				-size "$SIZE" -rate "$rate" -duration "$DURATION" -drain "$DRAIN" \
				-pids "$(node_pids)" >>"$OUT"
			sleep 1
		done
		stop_nodes
		sleep 1
	done
done

# Idle-connection cost on fresh nodes: after a fanout run the nodes' heaps have
# grown and freed memory gets reused, which would understate the cost.
if ((CONNS > 0)); then
	caddyfile "${HISTORY%% *}"
	start_nodes "$RUN/Caddyfile" /ws
	sleep 1
	log "conns: $CONNS idle connections"
	"$BIN/redisws-bench" conns -urls "$URLS" -conns "$CONNS" \
		-pids "$(node_pids)" -admin "$ADMINS" >>"$OUT"
fi

{
	echo "# redis_ws load matrix"
	echo
	echo "$(header_line)" "2 Caddy nodes + 1 redis-server + the load tool on the same machine (loopback)."
	echo "Deliveries/s = received deliveries / (last receipt − first send); loss counted at the end of the drain" \
		"(at most $DRAIN after the last send); latency = receive − send time of each delivery." \
		"Node RSS = sum of both Caddy processes' VmRSS."
	[[ $TRANSPORT == ws ]] || echo "Subscribers per run, in the order run (#n), each on fresh nodes and an emptied Redis:" \
		"WebSocket, or SSE (each a GET with Accept: text/event-stream on its own TCP connection, one event per message);" \
		"the publishers are WebSocket in every run."
	[[ $HISTORY == off ]] || echo "Route history per run, in the order run (#n), each on fresh nodes and an emptied Redis:" \
		"off, or \`history <size>\` (every publisher frame recorded in the channel's stream by the Lua script)."
	echo
	"$BIN/redisws-bench" table "$OUT"
} >"$MD"
log "wrote $OUT and $MD"
cat "$MD" >&2
