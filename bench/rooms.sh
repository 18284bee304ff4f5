#!/usr/bin/env bash
# Many rooms on one connection: builds Caddy (with redis_ws; CADDY_BIN=path
# takes a binary already built) and the load tool, starts its own
# redis-server and, for every size and rate, two fresh Caddy nodes whose
# route lets command clients (redis_ws.v2) subscribe and publish to room:*,
# and runs `redisws-bench manyrooms`: CONNS connections over the two nodes,
# each one WebSocket subscribed to PER of ROOMS rooms (every room followed
# on both nodes), PUBS publishers sending 64 B stamped publish commands to
# every room at RATE msg/s. With CENTRIFUGO_BIN=path (a Centrifugo v6
# binary; nothing of it is in this repository) the same load runs right
# after against two Centrifugo nodes with the Redis engine on the same
# redis-server, so the two alternate in one session. Writes
# $RESULTS.jsonl and $RESULTS.md (every row with its command). Everything
# it starts is stopped on exit; Redis is emptied between runs. Loopback only.
# Wall time: about (DURATION + 25 s) per run.
#
# Environment knobs (defaults = the README's runs):
#   SIZES="400x20x800 1000x20x2000" (CONNSxPERxROOMS) RATES="1 10" (msg/s per room)
#   PUBS=40 DURATION=15s DRAIN=5s CONNECT_RATE=500
#   CENTRIFUGO_BIN= (no Centrifugo rows without it) RESULTS=bench/rooms-results
set -euo pipefail
NAME=rooms
source "$(dirname "$0")/lib.sh"

SIZES=${SIZES:-"400x20x800 1000x20x2000"}
RATES=${RATES:-"1 10"}
PUBS=${PUBS:-40}
DURATION=${DURATION:-15s}
DRAIN=${DRAIN:-5s}
CONNECT_RATE=${CONNECT_RATE:-500}
RESULTS=${RESULTS:-bench/rooms-results}
CENTRIFUGO_BIN=${CENTRIFUGO_BIN:-}
if [[ -n $CENTRIFUGO_BIN && ! -x $CENTRIFUGO_BIN ]]; then
	log "CENTRIFUGO_BIN=$CENTRIFUGO_BIN is not an executable"
	exit 2
fi

build
free_port REDIS_PORT 6790
start_redis "$REDIS_PORT"
REDIS_PID=${PIDS[-1]}
export REDIS_PORT
free_port P1 8801
free_port P2 8801
free_port A1 2801
free_port A2 2801

cat >"$RUN/Caddyfile" <<'CADDY'
{
	admin 127.0.0.1:{$ADMIN_PORT}
	persist_config off
}
:{$PORT} {
	redis_ws /ws lobby {
		redis redis://127.0.0.1:{$REDIS_PORT}
		allow subscribe room:*
		allow publish room:*
	}
}
CADDY

# centrifugo_config PORT: a Centrifugo v6 node on 127.0.0.1:PORT with the
# Redis engine; clients connect without a token and may subscribe and
# publish to the namespace "room" (as the route's allow rules let ours).
centrifugo_config() {
	cat <<JSON
{
  "http_server": {"address": "127.0.0.1", "port": $1},
  "log": {"level": "error"},
  "health": {"enabled": true},
  "client": {"allow_anonymous_connect_without_token": true},
  "engine": {"type": "redis", "redis": {"address": ["redis://127.0.0.1:$REDIS_PORT"]}},
  "channel": {
    "namespaces": [{"name": "room",
      "allow_subscribe_for_anonymous": true, "allow_subscribe_for_client": true,
      "allow_publish_for_anonymous": true, "allow_publish_for_client": true}]
  }
}
JSON
}

start_centrifugo() {
	local i port
	NODE_PIDS=()
	for i in 1 2; do
		if [[ $i == 1 ]]; then port=$P1; else port=$P2; fi
		centrifugo_config "$port" >"$RUN/centrifugo-$i.json"
		"$CENTRIFUGO_BIN" --config "$RUN/centrifugo-$i.json" >>"$RUN/centrifugo-$i.log" 2>&1 &
		NODE_PIDS+=($!)
	done
	for port in "$P1" "$P2"; do
		wait_until 20 curl -fsS "http://127.0.0.1:$port/health" || {
			log "centrifugo on $port did not answer; log:"
			tail -20 "$RUN"/centrifugo-*.log >&2
			exit 1
		}
	done
	log "centrifugo nodes up: pids ${NODE_PIDS[*]}, ports $P1 $P2"
}

# one SERVER CONNS PER ROOMS RATE: fresh nodes, one run, its line and command kept.
one() {
	local server=$1 conns=$2 per=$3 rooms=$4 rate=$5 urls
	redis-cli -p "$REDIS_PORT" flushall >/dev/null
	if [[ $server == redisws ]]; then
		start_nodes "$RUN/Caddyfile" /ws
		urls="ws://127.0.0.1:$P1/ws,ws://127.0.0.1:$P2/ws"
	else
		start_centrifugo
		urls="ws://127.0.0.1:$P1/connection/websocket,ws://127.0.0.1:$P2/connection/websocket"
	fi
	sleep 2 # the nodes' start-up garbage collected before their RSS is read
	local args=(manyrooms -json -server "$server" -urls "$urls" -pids "$(node_pids)"
		-conns "$conns" -per-conn "$per" -rooms "$rooms" -pubs "$PUBS" -room-rate "$rate"
		-size 64 -duration "$DURATION" -drain "$DRAIN" -connect-rate "$CONNECT_RATE" -handshake-timeout 20s)
	log "$server: $conns connections × $per of $rooms rooms, $rate msg/s per room ..."
	local r0 r1
	r0=$(cpu_ticks "$REDIS_PID")
	"$BIN/redisws-bench" "${args[@]}" >>"$RUN/lines.jsonl" 2>>"$RUN/run.log" || {
		log "$server run: exit $? (its line is kept); the tool said:"
		tail -5 "$RUN/run.log" >&2
	}
	r1=$(cpu_ticks "$REDIS_PID")
	# the command as run, and Redis's CPU over the whole run (connect, send, drain)
	echo "redisws-bench ${args[*]}" | sed -E 's/-pids [0-9,]+/-pids <node pids>/; s/127\.0\.0\.1:[0-9]+/127.0.0.1:PORT/g' |
		sed "s/\$/\` (redis-server: $(ticks_s $((r1 - r0))) CPU s over the whole run)/" >>"$RUN/commands"
	stop_nodes
}

for size in $SIZES; do
	IFS=x read -r conns per rooms <<<"$size"
	for rate in $RATES; do
		one redisws "$conns" "$per" "$rooms" "$rate"
		if [[ -n $CENTRIFUGO_BIN ]]; then one centrifugo "$conns" "$per" "$rooms" "$rate"; fi
	done
done

touch "$RESULTS.jsonl"
cat "$RUN/lines.jsonl" >>"$RESULTS.jsonl"
{
	echo "# Many rooms on one connection"
	echo
	header_line
	echo "Command: \`${CADDY_BIN:+CADDY_BIN=… }${CENTRIFUGO_BIN:+CENTRIFUGO_BIN=… }SIZES=\"$SIZES\" RATES=\"$RATES\" PUBS=$PUBS DURATION=$DURATION DRAIN=$DRAIN bash bench/rooms.sh\`"
	if [[ -n $CENTRIFUGO_BIN ]]; then echo "Centrifugo: $(go version -m "$CENTRIFUGO_BIN" | awk '$1 == "mod" { print $2, $3 }'), built with $(go version "$CENTRIFUGO_BIN" | cut -d' ' -f2)."; fi
	echo
	"$BIN/redisws-bench" table "$RUN/lines.jsonl"
	echo "Rows in order, each from:"
	echo
	awk '{ printf "%d. `%s\n", NR, $0 }' "$RUN/commands"
} >"$RESULTS.md"
log "wrote $RESULTS.md and $RESULTS.jsonl"
cat "$RESULTS.md"
