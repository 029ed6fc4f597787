#!/usr/bin/env bash
# Revocation fan-out at scale, through fleetauthd's HTTP API. CLIENTS driver
# token clients are spread round-robin over BROKERS brokers that follow one
# database. The first half have plain tokens; the second half have tokens
# bound to a phone device of their own (did claim). One burst of REVOKED API
# calls, sent by fleetauth-scale-api from several threads at once, revokes
# them: half are PATCH /v1/users/{id} {"status": "disabled"} on first-half
# users, half are POST /v1/devices/{id}/revoke on second-half phones. The
# latency of a revoked client is the time from the start of the API call
# that revoked it to its disconnect as seen by the client. Prints median,
# p99 and max per broker and overall, and checks that exactly the revoked
# clients were dropped.
#
#   tools/scale/revocation.sh BUILD_DIR [CLIENTS [REVOKED [BROKERS]]]
#
# Defaults: 10000 clients, 1000 revoked, 3 brokers. SCALE_API_WORKERS sets
# the number of concurrent API calls (default 8). Starts its own stack in a
# temporary folder with tools/stack and stops it on exit.
set -euo pipefail

readonly SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly USAGE="usage: revocation.sh BUILD_DIR [CLIENTS [REVOKED [BROKERS]]]"
build=$(cd "${1:?$USAGE}" && pwd)
clients=${2:-10000}
revoked=${3:-1000}
brokers=${4:-3}
workers=${SCALE_API_WORKERS:-8}
watch=$build/tools/scale/fleetauth-scale-watch
mint=$build/tools/bench/fleetauth-bench-mint
api=$build/tools/scale/fleetauth-scale-api
for tool in "$watch" "$mint" "$api"; do
	[[ -x $tool ]] || {
		echo "error: $tool not found: build it in $build" >&2
		exit 1
	}
done
((clients % 2 == 0 && revoked % 2 == 0)) || {
	echo "error: CLIENTS ($clients) and REVOKED ($revoked) must be even," \
		"because half of each are users and half devices" >&2
	exit 1
}
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
api_port=${FLEETAUTH_URL##*:}

# Users 1 .. half have plain tokens; users half+1 .. CLIENTS each own phone
# ${tag}m<i>. One client in every CLIENTS / REVOKED of each half is revoked.
half=$((clients / 2))
every=$((clients / revoked))
tag=s$(openssl rand -hex 3)
psql -X -q -v ON_ERROR_STOP=1 <<EOF
INSERT INTO carriers (id, name) VALUES ('$tag', 'scale');
INSERT INTO principals (id, kind)
	SELECT '${tag}d' || i, 'user' FROM generate_series(1, $clients) i;
INSERT INTO users (id, carrier_id, role, password_hash)
	SELECT '${tag}d' || i, '$tag', 'driver', 'x'
	FROM generate_series(1, $clients) i;
INSERT INTO principals (id, kind)
	SELECT '${tag}m' || i, 'device'
	FROM generate_series($half + 1, $clients) i;
INSERT INTO devices (id, carrier_id, device_type, status, user_id,
		created_by, enrolled_at)
	SELECT '${tag}m' || i, '$tag', 'phone', 'active', '${tag}d' || i,
		'scale', now()
	FROM generate_series($half + 1, $clients) i;
EOF
kid=$(psql -X -q -A -t -c \
	"SELECT kid FROM signing_keys WHERE status = 'current'")
mint_args=(--key "$FLEETAUTH_SIGNING_KEY" --kid "$kid" --prefix "${tag}d"
	--count "$half" --carrier "$tag" --issuer "$FLEETAUTH_ISSUER"
	--audience "$FLEETAUTH_AUDIENCE")
{
	"$mint" "${mint_args[@]}"
	"$mint" "${mint_args[@]}" --first $((half + 1)) \
		--device-prefix "${tag}m"
} >"$work/clients"
# The brokers learn about the new users and phones from change_log; wait
# until every broker accepts the last phone client.
read -r _ last_user last_token _ < <(tail -n 1 "$work/clients")
for port in "${ports[@]}"; do
	for _ in $(seq 1 300); do
		mosquitto_pub -h 127.0.0.1 -p "$port" -i "$last_user:probe" \
			-u "$last_user" -P "$last_token" -t probe -n \
			2>/dev/null && break
		sleep 0.1
	done
done

# The API calls of the burst, one per revoked client, tagged with the
# client id, users and devices interleaved. Client i is on broker
# (i - 1) mod BROKERS. The k-th revoked client of the first half is the one
# among numbers (k - 1) * every + 1 .. k * every that is on broker
# k mod BROKERS, so the revoked clients are spread evenly over the brokers
# even when every is a multiple of BROKERS.
for ((k = 1; k <= revoked / 2; k++)); do
	i=$((k * every))
	if ((every >= brokers)); then
		i=$((i - ((k * every - 1 - k) % brokers + brokers) % brokers))
	fi
	printf '%s PATCH /v1/users/%s {"status":"disabled"}\n' \
		"${tag}d$i" "${tag}d$i"
	j=$((i + half))
	printf '%s POST /v1/devices/%s/revoke {"reason":"lost"}\n' \
		"${tag}d$j" "${tag}m$j"
done >"$work/requests"
expected=$(wc -l <"$work/requests")

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
	# Drops expected in this slice: clients named in a request.
	drops=$(awk 'NR == FNR { want[$1] = 1; next } $1 in want' \
		"$work/requests" "$slice" | wc -l)
	# The watcher connects client k of its file to port k mod BROKERS;
	# slices of WATCH_SLICE lines keep the global round-robin only when
	# WATCH_SLICE is a multiple of BROKERS, so pass the ports rotated.
	offset=$(((n * WATCH_SLICE) % brokers))
	slice_ports=$(for ((k = 0; k < brokers; k++)); do
		printf '%s\n' "${ports[(k + offset) % brokers]}"
	done | paste -sd,)
	"$watch" --ports "$slice_ports" --clients "$slice" \
		--concurrency 32 --hold 90 --timeout 300 \
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
log "sending $expected API calls with $workers workers"
api_status=0
"$api" --port "$api_port" --workers "$workers" <"$work/requests" \
	>"$work/api.out" || api_status=$?
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

dropped=$(grep -c '^dropped ' "$work/watch.out" || true)
wrong=$(awk 'NR == FNR { want[$1] = 1; next }
	$1 == "dropped" && !($3 in want) { print $3 }' \
	"$work/requests" "$work/watch.out" | wc -l)
alive=$(grep -c '^alive ' "$work/watch.out" || true)
api_failed=$(awk '$4 < 200 || $4 > 299' "$work/api.out" | wc -l)
# Per dropped client: "port ms-from-call-start ms-from-call-end kind".
awk 'NR == FNR { start[$1] = $2; end[$1] = $3; next }
	$1 == "dropped" && ($3 in start) {
		print $4, $2 - start[$3], $2 - end[$3] }' \
	"$work/api.out" "$work/watch.out" >"$work/latency"

# Prints "median p99 max" of the numbers on stdin (nearest-rank p99).
percentiles()
{
	sort -n | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "- - -"; exit }
		p99 = int(NR * 0.99 + 0.999999); if (p99 > NR) p99 = NR
		printf "%d %d %d\n", v[int((NR + 1) / 2)], v[p99], v[NR] }'
}

printf 'scenario: revocation fan-out, %d clients on %d brokers, %d' \
	"$clients" "$brokers" "$expected"
printf ' revoked through the API (%d users, %d devices), %d workers\n' \
	$((expected / 2)) $((expected / 2)) "$workers"
printf 'machine: %s cores, load average %s\n' "$(nproc)" \
	"$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'connect: %d connected, %d refused, %d failed, %.1f s for all\n' \
	"$connected" "$refused" "$failed" \
	"$(awk -v a="$ready_ms" -v b="$launch_ms" 'BEGIN { print (a - b) / 1000 }')"
printf 'API: %d calls, %d failed, %d ms from first start to last end;' \
	"$expected" "$api_failed" "$(awk 'NR == 1 || $2 < s { s = $2 }
		$3 > e { e = $3 } END { print e - s }' "$work/api.out")"
printf ' ms per call: median p99 max %s\n' \
	"$(awk '{ print $3 - $2 }' "$work/api.out" | percentiles)"
printf 'dropped %d (expected %d), wrongly dropped %d, alive %d\n' \
	"$dropped" "$expected" "$wrong" "$alive"
printf 'broker CPU during the revocation (ms):%s\n' "$cpu_text"
printf 'broker VmRSS (KiB) before connecting:%s, connected:%s\n' \
	"$rss_idle" "$rss_connected"
printf 'ms from the start of the API call to disconnect: median p99 max\n'
for port in "${ports[@]}"; do
	printf '  broker port %s (%d drops): %s\n' "$port" \
		"$(awk -v p="$port" '$1 == p' "$work/latency" | wc -l)" \
		"$(awk -v p="$port" '$1 == p { print $2 }' "$work/latency" |
			percentiles)"
done
printf '  all brokers: %s\n' \
	"$(awk '{ print $2 }' "$work/latency" | percentiles)"
printf 'ms from the end of the API call to disconnect, all brokers: %s\n' \
	"$(awk '{ print $3 }' "$work/latency" | percentiles)"
((api_status == 0 && api_failed == 0)) || {
	echo "error: $api_failed API calls failed; see $work/api.out" \
		"(status 0 is a connection failure; set SCALE_KEEP=1)" >&2
	exit 1
}
((dropped == expected && wrong == 0)) || {
	echo "error: expected exactly the $expected revoked clients to be" \
		"dropped (see the counts above)" >&2
	exit 1
}
