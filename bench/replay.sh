#!/usr/bin/env bash
# What replays cost the node and Redis. Builds Caddy (with redis_ws), starts
# one redis-server and one node whose route /rooms/* keeps `history 1000`
# (send_queue at its default, 1 MiB), records MESSAGES messages of SIZE
# bytes in room a (POSTs), then:
#  1. opens CLIENTS WebSocket clients that ask for a replay, half with
#     ?rewind=1000 and half with ?since=<epoch>:0 (from the start), and never
#     read: prints the node's RSS before and its peak over the next HOLD
#     seconds (the node holds what it queued until the write times out, 10 s),
#     and the bytes Redis sent for the replays;
#  2. sends REQUESTS upgrades with ?since=nope:0 (an epoch that is not the
#     room's: nothing to replay), one after the other while one more client
#     keeps the room subscribed: prints the read script's durations from
#     Redis's SLOWLOG (slowlog-log-slower-than 0) and the bytes Redis sent
#     (INFO stats total_net_output_bytes, before and after).
# Clients are bash's /dev/tcp: a handshake written by hand, nothing read.
# Appends a section to $RESULTS.md. Loopback only; everything it starts is
# stopped on exit. Wall time: about 30 s.
#
# Environment knobs: MESSAGES=400 SIZE=60000 CLIENTS=4 HOLD=8 REQUESTS=20
#   RESULTS=bench/replay-results LABEL=<text naming the run>
set -euo pipefail
NAME=replay
source "$(dirname "$0")/lib.sh"

MESSAGES=${MESSAGES:-400}
SIZE=${SIZE:-60000}
CLIENTS=${CLIENTS:-4}
HOLD=${HOLD:-8}
REQUESTS=${REQUESTS:-20}
RESULTS=${RESULTS:-bench/replay-results}
LABEL=${LABEL:-commit $(git rev-parse --short HEAD 2>/dev/null || echo none)}

build
free_port REDIS_PORT 6790
start_redis "$REDIS_PORT"
export REDIS_PORT
cat >"$RUN/Caddyfile" <<'CADDY'
{
	admin 127.0.0.1:{$ADMIN_PORT}
	persist_config off
}
:{$PORT} {
	redis_ws /rooms/* {
		subscribe room:{http.request.uri.path.1}
		publish room:{http.request.uri.path.1}
		redis redis://127.0.0.1:{$REDIS_PORT}
		history 1000
	}
	respond /health 200
}
CADDY
free_port P1 8791
free_port A1 2791
start_nodes "$RUN/Caddyfile" /health 1
NODE=${NODE_PIDS[0]}
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$NODE/status"; }
net_out() { rcli info stats | tr -d '\r' | awk -F: '$1 == "total_net_output_bytes" { print $2 }'; }
# upgrade FD PATH: writes an upgrade request for PATH on connection FD
upgrade() {
	printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n' "$2" >&"$1"
}

head -c "$SIZE" /dev/zero | tr '\0' x >"$RUN/body"
log "recording $MESSAGES messages of $SIZE bytes in room a"
for ((i = 1; i <= MESSAGES; i++)); do
	answer=$(curl -sS --data-binary @"$RUN/body" "http://127.0.0.1:$P1/rooms/a")
done
epoch=$(sed 's/.*"epoch":"\([^"]*\)".*/\1/' <<<"$answer")
log "last answer: $answer"
sha=$(sha1sum internal/bus/lua/read.lua | cut -d' ' -f1) # go-redis runs the script by this name (evalsha)

# 1. Replays that are never read.
rss0=$(rss_kb)
out0=$(net_out)
fds=()
for ((i = 0; i < CLIENTS; i++)); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$P1"
	if ((i % 2 == 0)); then upgrade "$fd" "/rooms/a?rewind=1000"; else upgrade "$fd" "/rooms/a?since=$epoch:0"; fi
	fds+=("$fd")
done
peak=$rss0
for ((i = 0; i < HOLD * 5; i++)); do
	sleep 0.2
	r=$(rss_kb)
	((r > peak)) && peak=$r
done
out1=$(net_out)
for fd in "${fds[@]}"; do exec {fd}>&-; done
log "replays: RSS ${rss0} kB before, peak ${peak} kB; Redis sent $((out1 - out0)) bytes"

# 2. since of another epoch; a client that stays keeps the room subscribed,
# so that the node's own read of a new subscription does not show here.
exec {keep}<>"/dev/tcp/127.0.0.1/$P1"
upgrade "$keep" /rooms/a
read -r -t 10 -u "$keep" status
rcli config set slowlog-log-slower-than 0 >/dev/null
rcli config set slowlog-max-len 10000 >/dev/null
rcli slowlog reset >/dev/null
out2=$(net_out)
for ((i = 0; i < REQUESTS; i++)); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$P1"
	upgrade "$fd" "/rooms/a?since=nope:0"
	read -r -t 10 -u "$fd" status || status="no answer"
	exec {fd}>&-
done
out3=$(net_out)
exec {keep}>&-
durations=$(rcli --json slowlog get 10000 | grep -o "\[[0-9]*,[0-9]*,[0-9]*,\[\"evalsha\",\"$sha\"" | cut -d, -f3 | sort -n | paste -sd" " || true)
rcli config set slowlog-log-slower-than 10000 >/dev/null
log "since=nope:0: last answer ${status%$'\r'}; read script durations (µs): $durations; Redis sent $((out3 - out2)) bytes"

{
	echo
	echo "## $LABEL"
	echo
	echo "$(header_line)" "$(redis-server --version | cut -d' ' -f1-3), one Caddy node, \`history 1000\`, send_queue 1 MiB (default)."
	echo "$MESSAGES messages of $SIZE bytes recorded in room a ($((MESSAGES * SIZE)) bytes of history)."
	echo
	echo "| measure | value |"
	echo "| --- | ---: |"
	echo "| node RSS before the replays | $((rss0 / 1024)) MB |"
	echo "| node RSS, peak over ${HOLD} s with $CLIENTS clients that never read ($((CLIENTS / 2 + CLIENTS % 2)) \`rewind=1000\`, $((CLIENTS / 2)) \`since=<epoch>:0\`) | $((peak / 1024)) MB |"
	echo "| bytes Redis sent for those replays | $((out1 - out0)) |"
	echo "| \`since=nope:0\` upgrades | $REQUESTS, answered \`${status%$'\r'}\` |"
	echo "| read script in SLOWLOG, µs each (sorted) | $durations |"
	echo "| bytes Redis sent for those $REQUESTS | $((out3 - out2)) ($(((out3 - out2) / REQUESTS)) each) |"
} >>"$RESULTS.md"
tail -14 "$RESULTS.md"
