# Helpers shared by the bench scripts (matrix.sh, publish.sh, post.sh, cluster.sh, storm.sh, ...).
# Source it after setting NAME; it cds to the repository root,
# makes a run directory $RUN and stops everything it started on exit.
# Loopback only: every server binds 127.0.0.1.

cd "$(dirname "${BASH_SOURCE[0]}")/.."
for tool in go curl redis-server redis-cli; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install curl redis-server; Go 1.26+)" >&2; exit 1; }
done
ROOT=$PWD
BIN=$ROOT/bench/.bin
RUN=$(mktemp -d "${TMPDIR:-/tmp}/redisws-$NAME.XXXXXX")
PIDS=()      # redis servers and samplers
NODE_PIDS=() # caddy nodes

log() { printf '[%s %(%H:%M:%S)T] %s\n' "$NAME" -1 "$*" >&2; }

# stop_pids PID...: TERM, wait up to 10 s each, then KILL
stop_pids() {
	local pid
	for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
	for pid in "$@"; do
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
	done
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_pids "${NODE_PIDS[@]}" "${PIDS[@]}"
	if [[ $rc -ne 0 ]]; then
		log "failed (exit $rc); logs kept in $RUN"
	else
		rm -rf "$RUN"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port VAR BASE [OFFSET]: set VAR to the first free port from BASE that
# this script has not taken yet; with OFFSET, port+OFFSET must be free too
# (a Redis Cluster node also listens on its bus port, port+10000).
TAKEN=" "
free_port() {
	local p off=${3:-0}
	for ((p = $2; p < $2 + 200; p++)); do
		if [[ $TAKEN != *" $p "* ]] && port_free "$p" && { ((off == 0)) || port_free $((p + off)); }; then
			TAKEN+="$p $((p + off)) "
			printf -v "$1" '%s' "$p"
			return 0
		fi
	done
	log "no free port from $2"
	return 1
}

wait_until() { # wait_until SECONDS CMD...: retry CMD every 0.1 s
	local t=$1 i
	shift
	for ((i = 0; i < t * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# build: the load tool, and Caddy unless CADDY_BIN names one already built
# (a binary of another commit, to measure a change against the code before it).
build() {
	mkdir -p "$BIN"
	if [[ -n ${CADDY_BIN:-} ]]; then
		log "building redisws-bench; caddy is $CADDY_BIN ..."
		rm -f "$BIN/caddy"
		cp "$CADDY_BIN" "$BIN/caddy"
	else
		log "building caddy and redisws-bench ..."
		go build -o "$BIN/caddy" ./cmd/caddy
	fi
	go build -o "$BIN/redisws-bench" ./cmd/redisws-bench
}

# start_redis PORT [ARGS...]: a redis-server on 127.0.0.1:PORT with its files in $RUN
start_redis() {
	local port=$1
	shift
	redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
		--dir "$RUN" --logfile "$RUN/redis-$port.log" "$@" &
	PIDS+=($!)
	wait_until 10 redis-cli -p "$port" ping || {
		log "redis-server on $port did not answer"
		exit 1
	}
}

# start_nodes CADDYFILE PROBE_PATH [COUNT]: two caddy nodes on $P1/$P2 (admin
# $A1/$A2), or with COUNT=1 one node on $P1 (admin $A1); the Caddyfile reads
# PORT, ADMIN_PORT and whatever else the caller exported.
start_nodes() {
	local i port admin count=${3:-2}
	NODE_PIDS=()
	for ((i = 1; i <= count; i++)); do
		if [[ $i == 1 ]]; then port=$P1 admin=$A1; else port=$P2 admin=$A2; fi
		PORT=$port ADMIN_PORT=$admin \
			XDG_CONFIG_HOME="$RUN/xdg-config-$i" XDG_DATA_HOME="$RUN/xdg-data-$i" \
			"$BIN/caddy" run --config "$1" --adapter caddyfile >>"$RUN/caddy-$i.log" 2>&1 &
		NODE_PIDS+=($!)
	done
	for ((i = 1; i <= count; i++)); do
		if [[ $i == 1 ]]; then port=$P1 admin=$A1; else port=$P2 admin=$A2; fi
		# up = the admin API answers and the site port returns an HTTP status
		wait_until 20 curl -fsS "http://127.0.0.1:$admin/config/" &&
			wait_until 20 curl -sS -o /dev/null "http://127.0.0.1:$port$2" || {
			log "caddy node $i did not answer; log:"
			tail -20 "$RUN/caddy-$i.log" >&2
			exit 1
		}
	done
	if ((count == 1)); then
		log "caddy node up: pid ${NODE_PIDS[*]}, port $P1, admin $A1"
	else
		log "caddy nodes up: pids ${NODE_PIDS[*]}, ports $P1 $P2, admin $A1 $A2"
	fi
}

stop_nodes() {
	stop_pids "${NODE_PIDS[@]}"
	NODE_PIDS=()
}

node_pids() { (IFS=,; echo "${NODE_PIDS[*]}"); }

# cpu_ticks PID...: user+system clock ticks used so far by these processes
cpu_ticks() {
	local pid sum=0 t
	for pid in "$@"; do
		# fields after the ")" that ends the command name: utime is the 12th, stime the 13th
		t=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
		sum=$((sum + ${t:-0}))
	done
	echo "$sum"
}
CLK_TCK=$(getconf CLK_TCK)
ticks_s() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", t / hz }'; }

header_line() { # the first line of a results .md: date, Go, cores, commit
	local dirty=""
	git diff --quiet HEAD -- . ':!bench' ':!cmd/redisws-bench' 2>/dev/null || dirty=" (module with uncommitted changes)"
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(go version | cut -d' ' -f3-), $(nproc) cores," \
		"commit $(git rev-parse --short HEAD 2>/dev/null || echo none)$dirty."
}

# wait_ready COUNT SECONDS: wait until COUNT load processes have written
# their $RUN/ready-* file (redisws-bench conns -ready), then set opened to the
# connections they hold in all; exits the script after SECONDS without.
wait_ready() {
	local t ready=0
	for ((t = 0; t < $2 * 10; t++)); do
		ready=$(find "$RUN" -maxdepth 1 -name 'ready-*' ! -name '*.tmp' | wc -l)
		((ready == $1)) && break
		sleep 0.1
	done
	((ready == $1)) || {
		log "only $ready of $1 load processes ready after $2s"
		exit 1
	}
	opened=$(cat "$RUN"/ready-* | awk '{ s += $1 } END { print s }')
}
