#!/usr/bin/env bash
# Rooms on one redis-server versus a Redis Cluster of 3 masters (sharded
# Pub/Sub): builds Caddy (with redis_ws) and the load tool, starts one
# redis-server, a 3-master cluster (no replicas) and, per setup, two Caddy
# nodes with rooms at /rooms/{room}; runs the same fanout against each: 30
# rooms, 1,000 subscribers, 30 publishers, 64 B, 10 s, at 3,000, 10,000 and
# 30,000 msg/s in all. Writes bench/cluster-results.jsonl and
# bench/cluster-results.md. Everything it starts is stopped on exit. Loopback
# only. Wall time: about 1.5 minutes.
#
# Environment knobs (defaults = the standard run):
#   ROOMS=30 SUBS=1000 PUBS=30 SIZE=64 RATES="3000 10000 30000" DURATION=10s DRAIN=5s
#   RESULTS=bench/cluster-results   (writes $RESULTS.jsonl and $RESULTS.md)
set -euo pipefail
NAME=cluster
source "$(dirname "$0")/lib.sh"

ROOMS=${ROOMS:-30}
SUBS=${SUBS:-1000}
PUBS=${PUBS:-30}
SIZE=${SIZE:-64}
RATES=${RATES:-"3000 10000 30000"}
DURATION=${DURATION:-10s}
DRAIN=${DRAIN:-5s}
RESULTS=${RESULTS:-bench/cluster-results}

build

free_port REDIS_PORT 6490
log "starting redis-server on 127.0.0.1:$REDIS_PORT"
start_redis "$REDIS_PORT"

free_port R1 7490 10000
free_port R2 7491 10000
free_port R3 7492 10000
log "starting a Redis Cluster of 3 masters on 127.0.0.1:$R1 $R2 $R3"
for p in $R1 $R2 $R3; do
	start_redis "$p" --cluster-enabled yes --cluster-config-file "nodes-$p.conf"
done
redis-cli --cluster create "127.0.0.1:$R1" "127.0.0.1:$R2" "127.0.0.1:$R3" --cluster-yes \
	>"$RUN/cluster-create.log" 2>&1 || {
	log "redis-cli --cluster create failed:"
	cat "$RUN/cluster-create.log" >&2
	exit 1
}
cluster_ok() {
	local p
	for p in $R1 $R2 $R3; do
		redis-cli -p "$p" cluster info | grep -q '^cluster_state:ok' || return 1
	done
}
wait_until 30 cluster_ok || {
	log "the cluster did not reach cluster_state:ok"
	exit 1
}
log "cluster_state:ok on all 3 masters"

# Which master owns each room's channel (slot of "room:rN"):
# ROOM_SHARD[port] = "count: r.. r.." and SHARD_SLOTS[port] = its slot ranges.
NODES=$(redis-cli -p "$R1" cluster nodes)
declare -A ROOM_COUNT ROOM_LIST SHARD_SLOTS
for p in $R1 $R2 $R3; do
	ROOM_COUNT[$p]=0
	ROOM_LIST[$p]=""
	SHARD_SLOTS[$p]=$(awk -v p="$p" '$2 ~ ":"p"@" { s = ""; for (i = 9; i <= NF; i++) s = s (s == "" ? "" : " ") $i; print s }' <<<"$NODES")
done
for ((r = 0; r < ROOMS; r++)); do
	slot=$(redis-cli -p "$R1" cluster keyslot "room:r$r")
	owner=$(awk -v s="$slot" '$3 ~ /master/ {
		for (i = 9; i <= NF; i++) {
			n = split($i, b, "-"); lo = b[1] + 0; hi = (n > 1 ? b[2] : b[1]) + 0
			if (s + 0 >= lo && s + 0 <= hi) { split($2, a, "[:@]"); print a[2] }
		}
	}' <<<"$NODES")
	ROOM_COUNT[$owner]=$((${ROOM_COUNT[$owner]:-0} + 1))
	ROOM_LIST[$owner]+=" r$r"
done
for p in $R1 $R2 $R3; do
	log "shard 127.0.0.1:$p (slots ${SHARD_SLOTS[$p]}): ${ROOM_COUNT[$p]} rooms:${ROOM_LIST[$p]}"
done

cat >"$RUN/Caddyfile.single" <<'CADDY'
{
	admin 127.0.0.1:{$ADMIN_PORT}
	persist_config off
}
:{$PORT} {
	redis_ws /rooms/* {
		subscribe room:{http.request.uri.path.1}
		publish room:{http.request.uri.path.1}
		redis redis://127.0.0.1:{$REDIS_PORT}
	}
}
CADDY
cat >"$RUN/Caddyfile.cluster" <<'CADDY'
{
	admin 127.0.0.1:{$ADMIN_PORT}
	persist_config off
}
:{$PORT} {
	redis_ws /rooms/* {
		subscribe room:{http.request.uri.path.1}
		publish room:{http.request.uri.path.1}
		redis {
			addrs 127.0.0.1:{$R1} 127.0.0.1:{$R2} 127.0.0.1:{$R3}
			cluster
		}
	}
}
CADDY
export REDIS_PORT R1 R2 R3

free_port P1 8501
free_port P2 8502
free_port A1 2501
free_port A2 2502
URLS="ws://127.0.0.1:$P1/rooms/{room},ws://127.0.0.1:$P2/rooms/{room}"

# publishes PORT: the PUBLISH and SPUBLISH calls this server counted since CONFIG RESETSTAT
publishes() {
	redis-cli -p "$1" info commandstats | tr -d '\r' | awk -F'[:=,]' '
		$1 == "cmdstat_publish" { p = $3 } $1 == "cmdstat_spublish" { s = $3 }
		END { printf "%d PUBLISH, %d SPUBLISH", p, s }'
}

OUT=$RESULTS.jsonl
MD=$RESULTS.md
: >"$OUT"
CPU_ROWS=()

for setup in single cluster; do
	if [[ $setup == single ]]; then
		redis_pids=("${PIDS[0]}")
		redis_ports=("$REDIS_PORT")
		label="1 redis-server"
	else
		redis_pids=("${PIDS[@]:1:3}")
		redis_ports=("$R1" "$R2" "$R3")
		label="cluster, 3 masters, sharded"
	fi
	start_nodes "$RUN/Caddyfile.$setup" /rooms/r0
	for rate in $RATES; do
		log "$label: $ROOMS rooms, $SUBS subs, $PUBS pubs, $SIZE B, $rate msg/s, $DURATION"
		for p in "${redis_ports[@]}"; do redis-cli -p "$p" config resetstat >/dev/null; done
		r0=$(cpu_ticks "${redis_pids[@]}")
		c0=$(cpu_ticks "${NODE_PIDS[@]}")
		"$BIN/redisws-bench" fanout -label "$label" -urls "$URLS" -rooms "$ROOMS" \
			-subs "$SUBS" -pubs "$PUBS" -size "$SIZE" -rate "$rate" \
			-duration "$DURATION" -drain "$DRAIN" -pids "$(node_pids)" >>"$OUT"
		r1=$(cpu_ticks "${redis_pids[@]}")
		c1=$(cpu_ticks "${NODE_PIDS[@]}")
		calls=""
		for p in "${redis_ports[@]}"; do calls+="${calls:+; }:$p $(publishes "$p")"; done
		CPU_ROWS+=("| $label | $rate | $(ticks_s $((r1 - r0))) | $(ticks_s $((c1 - c0))) | $calls |")
		sleep 1
	done
	stop_nodes
done

{
	echo "# redis_ws rooms: one redis-server vs a Redis Cluster"
	echo
	echo "$(header_line)" \
		"2 Caddy nodes, redis-server(s) and the load tool on the same machine (loopback)."
	echo "$ROOMS rooms (/rooms/r0 … /rooms/r$((ROOMS - 1)), channels room:rN), $SUBS subscribers and $PUBS publishers" \
		"spread round-robin over rooms and both nodes (every room has subscribers on both nodes), $SIZE B, $DURATION per rate;" \
		"\"rate asked\" is the total over all rooms. Each subscriber expects exactly its room's messages:" \
		"expected deliveries = Σ rooms sent × subscribers. Deliveries/s = received deliveries / (last receipt − first send);" \
		"loss counted at the end of the drain (at most $DRAIN after the last send); latency = receive − send time of each delivery."
	echo
	echo "Rooms per shard (slot of room:rN, \`CLUSTER KEYSLOT\`):"
	echo
	for p in $R1 $R2 $R3; do
		echo "- 127.0.0.1:$p (slots ${SHARD_SLOTS[$p]}): ${ROOM_COUNT[$p]} rooms (${ROOM_LIST[$p]# })"
	done
	echo
	"$BIN/redisws-bench" table "$OUT"
	echo "CPU seconds used during each run (user + system, from /proc; the rest of the 2 cores went to the load tool)," \
		"and the publish commands each Redis server executed (INFO commandstats, reset before each run):"
	echo
	echo "| setup | rate asked | redis CPU s | caddy nodes CPU s | publishes per Redis server |"
	echo "| --- | ---: | ---: | ---: | --- |"
	printf '%s\n' "${CPU_ROWS[@]}"
} >"$MD"
log "wrote $OUT and $MD"
cat "$MD" >&2
