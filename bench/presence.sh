#!/usr/bin/env bash
# What presence costs Redis: one node, a route with presence on /rooms/*,
# SUBS connections (default 10,000) spread over ROOMS rooms (1,000), each
# connection its own user (named by its remote port), held open by the load
# tool's fanout mode at a trickle of messages. Once every room has its
# entries, it counts the commands Redis runs for WINDOW seconds (INFO
# stats, minus the fan-out's own PUBLISHes) and times QUERIES presence
# queries (curl, one room each). Writes bench/presence-results.md.
# Loopback only. Wall time: about 1.5 minutes.
#
# Environment knobs: SUBS=10000 ROOMS=1000 WINDOW=20 QUERIES=200
set -euo pipefail

NAME=presence
source "$(dirname "$0")/lib.sh"

SUBS=${SUBS:-10000}
ROOMS=${ROOMS:-1000}
WINDOW=${WINDOW:-20}
QUERIES=${QUERIES:-200}
RESULTS=${RESULTS:-bench/presence-results}
ulimit -n "$(ulimit -Hn)" # the connections and the load tool's need more than the default

build
free_port REDIS_PORT 6390
start_redis "$REDIS_PORT"
export REDIS_PORT
cat >"$RUN/Caddyfile" <<CADDY
{
	admin 127.0.0.1:{\$ADMIN_PORT}
	persist_config off
}
:{\$PORT} {
	redis_ws /rooms/* {
		subscribe room:{http.request.uri.path.1}
		publish room:{http.request.uri.path.1}
		redis redis://127.0.0.1:{\$REDIS_PORT}
		presence {
			user {http.request.remote.port}
		}
	}
	respond /health 200
}
CADDY
free_port P1 8401
free_port A1 2401
start_nodes "$RUN/Caddyfile" /health 1

duration=$((WINDOW + 60))
"$BIN/redisws-bench" fanout -urls "ws://127.0.0.1:$P1/rooms/{room}" -rooms "$ROOMS" -subs "$SUBS" -pubs 1 \
	-size 64 -rate 10 -duration "${duration}s" -drain 1s >"$RUN/fanout.jsonl" 2>"$RUN/fanout.log" &
PIDS+=($!)

# every room has the node's entry, and the node has every connection
entries() { redis-cli -p "$REDIS_PORT" --scan --pattern 'redis_ws:*:pn' | wc -l; }
wait_until 120 bash -c "[[ \$(redis-cli -p $REDIS_PORT --scan --pattern 'redis_ws:*:pn' | wc -l) -ge $ROOMS ]] && grep -q 'sending' $RUN/fanout.log" || {
	log "the rooms did not all get presence entries: $(entries)"
	exit 1
}
sleep 6 # one full refresh period (timeout 15s / 3) after the last connection
stat() { redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' | awk -F'[:=,]' -v c="cmdstat_$1" '$1 == c { print $3 }'; }
total() { redis-cli -p "$REDIS_PORT" info stats | tr -d '\r' | awk -F: '$1 == "total_commands_processed" { print $2 }'; }
t0=$(total) e0=$(stat evalsha) p0=$(stat publish)
sleep "$WINDOW"
t1=$(total) e1=$(stat evalsha) p1=$(stat publish)
cmds=$(((t1 - t0) - (p1 - p0)))
evals=$((e1 - e0))
log "commands/s besides the fan-out's PUBLISHes: $((cmds / WINDOW)); presence updates (EVALSHA)/s: $((evals / WINDOW))"

: >"$RUN/query.txt"
for ((i = 0; i < QUERIES; i++)); do
	curl -s -o /dev/null -w '%{time_total}\n' -H 'Accept: application/json' "http://127.0.0.1:$P1/rooms/r$((i % ROOMS))" >>"$RUN/query.txt"
done
read -r p50 p99 max < <(sort -n "$RUN/query.txt" | awk '{ a[NR] = $1 } END { printf "%.2f %.2f %.2f\n", a[int(NR*0.5)]*1000, a[int(NR*0.99)]*1000, a[NR]*1000 }')
sample=$(curl -s -H 'Accept: application/json' "http://127.0.0.1:$P1/rooms/r7")
log "query p50 $p50 ms, p99 $p99 ms, max $max ms; $sample"

{
	echo "# redis_ws presence: what it costs Redis"
	echo
	header_line
	echo
	echo "1 Caddy node + 1 redis-server + the load tool on one machine (loopback). $SUBS connections over $ROOMS rooms (route with \`presence\`, defaults: timeout 15s, refreshed every 5 s), each connection its own user; the load tool's fanout mode holds them, publishing 10 msg/s. Commands counted over ${WINDOW}s once every room had its entries, minus the fan-out's PUBLISHes (INFO stats). Query: $QUERIES sequential curl GETs with Accept: application/json, one room each, time_total."
	echo
	echo "| connections | rooms | Redis commands/s for presence | of them presence updates (EVALSHA)/s | query p50 ms | p99 ms | max ms |"
	echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	echo "| $SUBS | $ROOMS | $((cmds / WINDOW)) | $((evals / WINDOW)) | $p50 | $p99 | $max |"
	echo
	echo "A query's answer: \`$sample\`"
} >"$RESULTS.md"
log "wrote $RESULTS.md"
