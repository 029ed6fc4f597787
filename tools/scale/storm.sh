#!/usr/bin/env bash
# Reconnect storm: CLIENTS token clients CONNECT at once to a broker that
# has just started, as after a broker restart (empty token cache, snapshot
# just loaded). Runs the same storm against a fresh anonymous broker (the
# same Mosquitto without the plugin) as the reference, alternating the two
# over ROUNDS rounds. Prints per round and as medians the time from the
# first CONNECT to the last CONNACK and the broker's CPU time.
#
#   tools/scale/storm.sh BUILD_DIR [CLIENTS [ROUNDS]]
#
# Defaults: 19000 clients, 3 rounds. The broker needs one file descriptor
# per client and inherits the caller's open-file limit, so CLIENTS must stay
# below it (ulimit -n). Starts its own stack in a temporary
# folder with tools/stack and stops it on exit.
set -euo pipefail

readonly SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly WATCH_SLICE=5000  # clients per process: 3 descriptors each
# Pending CONNECTs over all client processes together. Mosquitto 2.0.11
# listens with a backlog of 100 (src/net.c). A connection that finds the
# queue full is dropped and the client's kernel resends its SYN after 1 s,
# so more pending CONNECTs than that would mostly measure the SYN
# retransmission timer, and more so for the slower broker.
readonly PENDING_TOTAL=96
build=$(cd "${1:?usage: storm.sh BUILD_DIR [CLIENTS [ROUNDS]]}" && pwd)
clients=${2:-19000}
rounds=${3:-3}
watch=$build/tools/scale/fleetauth-scale-watch
mint=$build/tools/bench/fleetauth-bench-mint
ulimit -n "$(ulimit -Hn)"
if ((clients + 100 > $(ulimit -n))); then
	echo "error: $clients clients need more than the open-file limit" \
		"of $(ulimit -n); use fewer clients" >&2
	exit 1
fi
for tool in "$watch" "$mint"; do
	[[ -x $tool ]] || {
		echo "error: $tool not found: build it in $build" >&2
		exit 1
	}
done

work=$(mktemp -d /tmp/fleetauth-scale-storm.XXXXXX)
broker_pid=
watch_pids=()
cleanup()
{
	local pid
	for pid in "${watch_pids[@]}" $broker_pid; do
		kill "$pid" 2>/dev/null || true
	done
	"$SRC_DIR/tools/stack" down "$work/stack" >/dev/null 2>&1 || true
	[[ -n ${SCALE_KEEP:-} ]] || rm -rf "$work"
}
trap cleanup EXIT
log()
{
	printf 'scale: %s\n' "$*" >&2
}

log "starting a stack in $work/stack"
"$SRC_DIR/tools/stack" up "$work/stack" --fast-bcrypt --build "$build" \
	>"$work/stack-up.log" 2>&1 || {
	tail -n 20 "$work/stack-up.log" >&2
	exit 1
}
set -a
. "$work/stack/env"
set +a

tag=r$(openssl rand -hex 3)
psql -X -q -v ON_ERROR_STOP=1 <<EOF
INSERT INTO carriers (id, name) VALUES ('$tag', 'storm');
INSERT INTO principals (id, kind)
	SELECT '${tag}d' || i, 'user' FROM generate_series(1, $clients) i;
INSERT INTO users (id, carrier_id, role, password_hash)
	SELECT '${tag}d' || i, '$tag', 'driver', 'x'
	FROM generate_series(1, $clients) i;
EOF
kid=$(psql -X -q -A -t -c \
	"SELECT kid FROM signing_keys WHERE status = 'current'")
"$mint" --key "$FLEETAUTH_SIGNING_KEY" --kid "$kid" --prefix "${tag}d" \
	--count "$clients" --carrier "$tag" --issuer "$FLEETAUTH_ISSUER" \
	--audience "$FLEETAUTH_AUDIENCE" >"$work/clients"
awk -v size="$WATCH_SLICE" -v dir="$work" \
	'{ print > (dir "/slice." int((NR - 1) / size)) }' "$work/clients"
slices=$(((clients + WATCH_SLICE - 1) / WATCH_SLICE))
concurrency=$((PENDING_TOTAL / slices))

port=$((20000 + RANDOM % 12000))
while [[ -n $(ss -Htan "sport = :$port") ]]; do
	port=$((20000 + RANDOM % 12000))
done
common="per_listener_settings false
persistence false
log_dest stderr
log_type error
log_type warning
max_connections -1
listener $port 127.0.0.1"
printf '%s\nallow_anonymous false\n%s\n' "$common" \
	"$(grep -E '^(plugin|plugin_opt_[a-z_]+) ' \
		"${FLEETAUTH_MOSQUITTO_CONFS%%,*}")" >"$work/plugin.conf"
printf '%s\nallow_anonymous true\n' "$common" >"$work/anonymous.conf"
chown -R mosquitto:mosquitto "$work" 2>/dev/null || true

start_broker()
{
	/usr/sbin/mosquitto -c "$work/$1.conf" >"$work/$1.log" 2>&1 &
	broker_pid=$!
	for _ in $(seq 1 600); do
		ss -Hltnp "sport = :$port" | grep -q "pid=$broker_pid," &&
			return 0
		sleep 0.1
	done
	echo "error: broker $1 did not listen on port $port" >&2
	exit 1
}

stop_broker()
{
	kill "$broker_pid" 2>/dev/null || true
	wait "$broker_pid" 2>/dev/null || true
	broker_pid=
}

# Prints the kernel's count of connections dropped because a listen queue
# was full (TcpExt ListenOverflows, for the whole machine).
listen_overflows()
{
	awk '$1 == "TcpExt:" && !n { for (i = 2; i <= NF; i++) name[i] = $i
		n = 1; next }
		$1 == "TcpExt:" { for (i = 2; i <= NF; i++)
			if (name[i] == "ListenOverflows") print $i }' \
		/proc/net/netstat
}

# Runs one storm against the broker just started; prints
# "ms_to_all_connected broker_cpu_ms connected refused failed
# listen_overflows".
storm()
{
	local before after launch ready n slice overflows
	before=$(awk '{ print $1 }' "/proc/$broker_pid/schedstat")
	overflows=$(listen_overflows)
	rm -f "$work"/watch.*
	launch=$(date +%s%3N)
	watch_pids=()
	for slice in "$work"/slice.*; do
		n=${slice##*.}
		"$watch" --ports "$port" --clients "$slice" \
			--concurrency "$concurrency" --hold 0 --timeout 120 \
			>"$work/watch.$n.out" 2>"$work/watch.$n.err" &
		watch_pids+=($!)
	done
	for n in "${watch_pids[@]}"; do
		wait "$n" || true
	done
	watch_pids=()
	after=$(awk '{ print $1 }' "/proc/$broker_pid/schedstat")
	ready=$(awk '$1 == "ready" { print $2 }' "$work"/watch.*.out |
		sort -n | tail -n 1)
	overflows=$(($(listen_overflows) - overflows))
	awk -v ms=$((ready - launch)) -v cpu=$(((after - before) / 1000000)) \
		-v overflows="$overflows" \
		'$1 == "ready" { c += $3; r += $4; f += $5 }
		END { print ms, cpu, c, r, f, overflows }' "$work"/watch.*.out
}

median()
{
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR % 2) print v[(NR + 1) / 2];
		else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

printf 'scenario: reconnect storm, %d token clients, %d rounds\n' \
	"$clients" "$rounds"
for ((round = 1; round <= rounds; round++)); do
	order="plugin anonymous"
	((round % 2)) || order="anonymous plugin"
	for kind in $order; do
		start_broker "$kind"
		sleep 1
		result=$(storm)
		stop_broker
		printf '%s %s\n' "$kind" "$result" >>"$work/results"
		read -r ms cpu connected refused failed overflows <<<"$result"
		printf 'round %d %-9s ms=%s cpu_ms=%s connected=%s' \
			"$round" "$kind" "$ms" "$cpu" "$connected"
		printf ' refused=%s failed=%s listen_overflows=%s load=%s\n' \
			"$refused" "$failed" "$overflows" \
			"$(cut -d' ' -f1 /proc/loadavg)"
	done
done
for kind in anonymous plugin; do
	printf 'median %-9s ms=%s cpu_ms=%s\n' "$kind" \
		"$(awk -v k="$kind" '$1 == k { print $2 }' "$work/results" |
			median)" \
		"$(awk -v k="$kind" '$1 == k { print $3 }' "$work/results" |
			median)"
done
