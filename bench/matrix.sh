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
#   COMPRESS=off            a list too, run for each TRANSPORT in its order, each on fresh
#                           nodes and an emptied Redis: "on" puts `compress` on the route
#                           and has every WebSocket of the load tool offer permessage-deflate
#                           (-compress), "off" neither; with more than "off" the runs are
#                           labelled, e.g. the compression comparison of the README:
#                           COMPRESS="off on off on" PAYLOAD=chat SIZE=1024 CHECK_EVERY=50
#                           RATES=1000 CONNS=0 RESULTS=bench/compress-results
#   PAYLOAD=x               what follows each payload's header: x (padding) or chat (a JSON
#                           chat message, which compresses as chat does)
#   CHECK_EVERY=1           every Nth subscriber checks each message (sequence, duplicates,
#                           latency), the others count frames without reading them: the load
#                           tool cannot inflate a million messages a second besides the nodes
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
COMPRESS=${COMPRESS:-off}
PAYLOAD=${PAYLOAD:-x}
CHECK_EVERY=${CHECK_EVERY:-1}
RESULTS=${RESULTS:-bench/results}

build
free_port REDIS_PORT 6390
log "starting redis-server on 127.0.0.1:$REDIS_PORT"
start_redis "$REDIS_PORT"
export REDIS_PORT

# caddyfile HISTORY [COMPRESS]: the route, with `history HISTORY` unless it
# is "off", and `compress` when COMPRESS is "on"
caddyfile() {
	local directive="" compress=""
	[[ $1 == off ]] || directive="history $1"
	[[ ${2:-off} == off ]] || compress="compress"
	cat >"$RUN/Caddyfile" <<CADDY
{
	admin 127.0.0.1:{\$ADMIN_PORT}
	persist_config off
}
:{\$PORT} {
	redis_ws /ws chat {
		redis redis://127.0.0.1:{\$REDIS_PORT}
		$directive
		$compress
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
for compress in $COMPRESS; do
	[[ $compress == on || $compress == off ]] || {
		log "COMPRESS: $compress is neither on nor off"
		exit 2
	}
done

n=0
for hist in $HISTORY; do
	for transport in $TRANSPORT; do
		for compress in $COMPRESS; do
			n=$((n + 1))
			caddyfile "$hist" "$compress"
			redis-cli -p "$REDIS_PORT" flushall >/dev/null
			start_nodes "$RUN/Caddyfile" /ws
			for rate in $RATES; do
				label=""
				# the machine's 1-min load average as the run starts: other tenants move the figures
				load="#$n, load $(cut -d' ' -f1 /proc/loadavg)"
				what=""
				if [[ $TRANSPORT != ws ]]; then
					what="WebSocket subscribers"
					[[ $transport == ws ]] || what="SSE subscribers"
				fi
				[[ $HISTORY == off ]] || what+="${what:+, }history $hist"
				[[ $COMPRESS == off ]] || what+="${what:+, }compress $compress"
				[[ -z $what ]] || label="$what ($load)"
				log "fanout: $SUBS $transport subs, $PUBS pubs, $SIZE B $PAYLOAD, $rate msg/s, $DURATION, history $hist, compress $compress"
				flags=()
				[[ $compress == off ]] || flags+=(-compress)
				"$BIN/redisws-bench" fanout -label "$label" -transport "$transport" -urls "$URLS" -subs "$SUBS" -pubs "$PUBS" \
					-size "$SIZE" -payload "$PAYLOAD" -check-every "$CHECK_EVERY" -rate "$rate" -duration "$DURATION" -drain "$DRAIN" \
					-pids "$(node_pids)" -admin "$ADMINS" "${flags[@]}" >>"$OUT"
				sleep 1
			done
			stop_nodes
			sleep 1
		done
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
	[[ $COMPRESS == off ]] || echo "Compression per run, in the order run (#n), each on fresh nodes and an emptied Redis:" \
		"on = \`compress\` on the route and every WebSocket of the load tool offering permessage-deflate" \
		"(its publishers then compress what they send, as browsers do); off = neither." \
		"Wire B per delivery = bytes the subscribers read off their sockets from the first send to the end of the drain," \
		"divided by the deliveries; node CPU s = user+system CPU seconds of both nodes over the same time;" \
		"node fan-out mean ms = the nodes' own caddy_redis_ws_fanout_latency_seconds over the same time (Redis receipt to the write of a batch)."
	((CHECK_EVERY == 1)) || echo "One subscriber in $CHECK_EVERY checks every message (sequence, duplicates, latency: the p50/p99 columns);" \
		"the others count the frames off their sockets without reading them; loss counts all of them."
	[[ $PAYLOAD == x ]] || echo "Payloads: the load tool's 51-byte header, then a JSON chat message (internal/chatjson) up to $SIZE bytes."
	echo
	"$BIN/redisws-bench" table "$OUT"
} >"$MD"
log "wrote $OUT and $MD"
cat "$MD" >&2
