#!/usr/bin/env bash
# Revocation fan-out at scale: CLIENTS token clients spread round-robin over
# BROKERS brokers that follow one database; one UPDATE disables REVOKED of
# their users. Prints, per broker and overall, the time from the start of
# the UPDATE to each client's disconnect as seen by the client (median, p99,
# max), and checks that exactly the clients of disabled users were dropped.
#
#   tools/scale/revocation.sh BUILD_DIR [CLIENTS [REVOKED [BROKERS]]]
#
# Defaults: 10000 clients, 1000 revoked, 3 brokers. Starts its own stack in
# a temporary folder with tools/stack and stops it on exit.
set -euo pipefail

readonly SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly USAGE="usage: revocation.sh BUILD_DIR [CLIENTS [REVOKED [BROKERS]]]"
build=$(cd "${1:?$USAGE}" && pwd)
clients=${2:-10000}
revoked=${3:-1000}
brokers=${4:-3}
watch=$build/tools/scale/fleetauth-scale-watch
mint=$build/tools/bench/fleetauth-bench-mint
for tool in "$watch" "$mint"; do
	[[ -x $tool ]] || {
		echo "error: $tool not found: build it in $build" >&2
		exit 1
	}
done
((revoked <= clients)) || {
	echo "error: REVOKED ($revoked) is more than CLIENTS ($clients)" >&2
	exit 1
}

work=$(mktemp -d /tmp/fleetauth-scale-revocation.XXXXXX)
watch_pids=()
cleanup()
{
	local pid
	for pid in "${watch_pids[@]}"; do
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

log "starting a stack with $brokers brokers in $work/stack"
"$SRC_DIR/tools/stack" up "$work/stack" --brokers "$brokers" \
	--fast-bcrypt --build "$build" >"$work/stack-up.log" 2>&1 || {
	tail -n 20 "$work/stack-up.log" >&2
	exit 1
}
set -a
. "$work/stack/env"
set +a
IFS=, read -r -a ports <<<"$MQTT_PORTS"
mapfile -t broker_pids < <(for conf in ${FLEETAUTH_MOSQUITTO_CONFS//,/ }; do
	pgrep -f -x "/usr/sbin/mosquitto -c $conf"
done)

# Every revoked-th user (by number) is disabled, so the revoked clients are
# spread evenly over the brokers.
every=$((clients / revoked))
tag=s$(openssl rand -hex 3)
psql -X -q -v ON_ERROR_STOP=1 <<EOF
INSERT INTO carriers (id, name) VALUES ('$tag', 'scale');
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
# The brokers learn about the new users from change_log; wait for the last.
read -r _ last_user last_token _ < <(tail -n 1 "$work/clients")
for port in "${ports[@]}"; do
	for _ in $(seq 1 300); do
		mosquitto_pub -h 127.0.0.1 -p "$port" -i "$last_user:probe" \
			-u "$last_user" -P "$last_token" -t probe -n \
			2>/dev/null && break
		sleep 0.1
	done
done

# libmosquitto needs 3 file descriptors per client, so each watcher
# process opens at most WATCH_SLICE clients.
readonly WATCH_SLICE=5000
log "connecting $clients clients"
rss_idle=
for pid in "${broker_pids[@]}"; do
	rss_idle+=" $(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")"
done
awk -v size="$WATCH_SLICE" -v dir="$work" \
	'{ print > (dir "/slice." int((NR - 1) / size)) }' "$work/clients"
watch_pids=()
launch_ms=$(date +%s%3N)
for slice in "$work"/slice.*; do
	n=${slice##*.}
	# Drops expected in this slice: users whose number divides by every.
	drops=$(awk -v tag="${tag}d" -v every="$every" \
		'substr($2, length(tag) + 1) % every == 0' "$slice" | wc -l)
	"$watch" --ports "$MQTT_PORTS" --clients "$slice" \
		--concurrency 32 --hold 60 --timeout 300 \
		--stop-after-drops "$drops" --grace 3 >"$work/watch.$n.out" \
		2>"$work/watch.$n.err" &
	watch_pids+=($!)
done
for ((n = 0; n < ${#watch_pids[@]}; n++)); do
	until grep -qs '^ready ' "$work/watch.$n.out"; do
		kill -0 "${watch_pids[n]}" 2>/dev/null || {
			cat "$work/watch.$n.err" >&2
			exit 1
		}
		sleep 0.2
	done
done
cat "$work"/watch.*.out >"$work/watch.out"
ready_ms=$(awk '$1 == "ready" { print $2 }' "$work/watch.out" | sort -n |
	tail -n 1)
read -r connected refused failed < <(awk '$1 == "ready" {
	c += $3; r += $4; f += $5 } END { print c, r, f }' "$work/watch.out")
log "connected $connected, refused $refused, failed $failed"
sleep 2

rss_connected=
for pid in "${broker_pids[@]}"; do
	rss_connected+=" $(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")"
done
declare -A cpu_before
for pid in "${broker_pids[@]}"; do
	cpu_before[$pid]=$(awk '{ print $1 }' "/proc/$pid/schedstat")
done
start_ms=$(date +%s%3N)
psql -X -q -v ON_ERROR_STOP=1 -c "UPDATE users SET status = 'disabled'
	WHERE carrier_id = '$tag'
	AND substr(id, length('${tag}d') + 1)::int % $every = 0"
commit_ms=$(date +%s%3N)
for pid in "${watch_pids[@]}"; do
	wait "$pid" || true
done
watch_pids=()
cat "$work"/watch.*.out >"$work/watch.out"
cpu_text=
for pid in "${broker_pids[@]}"; do
	after=$(awk '{ print $1 }' "/proc/$pid/schedstat")
	cpu_text+=" $(((after - cpu_before[$pid]) / 1000000))"
done

expected=$((clients / every))
dropped=$(grep -c '^dropped ' "$work/watch.out" || true)
wrong=$(awk -v tag="${tag}d" -v every="$every" '$1 == "dropped" {
	n = substr($3, length(tag) + 1) + 0
	if (n % every != 0) print $3 }' "$work/watch.out" | wc -l)
alive=$(grep -c '^alive ' "$work/watch.out" || true)

# Prints "median p99 max" of the numbers on stdin (nearest-rank p99).
percentiles()
{
	sort -n | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "- - -"; exit }
		p99 = int(NR * 0.99 + 0.999999); if (p99 > NR) p99 = NR
		printf "%d %d %d\n", v[int((NR + 1) / 2)], v[p99], v[NR] }'
}

printf 'scenario: revocation fan-out, %d clients on %d brokers, %d users' \
	"$clients" "$brokers" "$expected"
printf ' disabled in one UPDATE\n'
printf 'machine: %s cores, load average %s\n' "$(nproc)" \
	"$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'connect: %d connected, %d refused, %d failed, %.1f s for all\n' \
	"$connected" "$refused" "$failed" \
	"$(awk -v a="$ready_ms" -v b="$launch_ms" 'BEGIN { print (a - b) / 1000 }')"
printf 'UPDATE: %d ms from psql start to return\n' \
	$((commit_ms - start_ms))
printf 'dropped %d (expected %d), wrongly dropped %d, alive %d\n' \
	"$dropped" "$expected" "$wrong" "$alive"
printf 'broker CPU during the revocation (ms):%s\n' "$cpu_text"
printf 'broker VmRSS (KiB) before connecting:%s, connected:%s\n' \
	"$rss_idle" "$rss_connected"
printf 'ms from UPDATE start to disconnect: median p99 max\n'
for port in "${ports[@]}"; do
	printf '  broker port %s (%d drops): %s\n' "$port" \
		"$(awk -v p="$port" '$1 == "dropped" && $4 == p' \
			"$work/watch.out" | wc -l)" \
		"$(awk -v p="$port" -v s="$start_ms" \
			'$1 == "dropped" && $4 == p { print $2 - s }' \
			"$work/watch.out" | percentiles)"
done
printf '  all brokers: %s\n' "$(awk -v s="$start_ms" \
	'$1 == "dropped" { print $2 - s }' "$work/watch.out" | percentiles)"
printf 'ms from UPDATE return (commit) to disconnect, all brokers: %s\n' \
	"$(awk -v s="$commit_ms" '$1 == "dropped" { print $2 - s }' \
		"$work/watch.out" | percentiles)"
((dropped == expected && wrong == 0)) || {
	echo "error: expected exactly the $expected clients of disabled" \
		"users to be dropped (see the counts above)" >&2
	exit 1
}
