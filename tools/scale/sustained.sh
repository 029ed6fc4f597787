#!/usr/bin/env bash
# Sustained mixed load on one plugin broker: CLIENTS drivers, each assigned
# its own load, publish to it at RATE messages per second in total and
# subscribe to it, for SECONDS seconds. Every 10 s a batch of 200 fresh
# token clients connects and disconnects, and the script samples the
# broker's VmRSS and CPU time. Prints one line per sample and a summary.
#
#   tools/scale/sustained.sh BUILD_DIR [SECONDS [CLIENTS [RATE]]]
#
# Defaults: 180 s, 2000 clients, 2000 messages/s. Starts its own stack in a
# temporary folder with tools/stack and stops it on exit.
set -euo pipefail

readonly SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly SAMPLE_INTERVAL=10 # seconds
readonly CHURN_CLIENTS=200  # fresh CONNECTs per sample interval
build=$(cd "${1:?usage: sustained.sh BUILD_DIR [SECONDS [CLIENTS [RATE]]]}" &&
	pwd)
seconds=${2:-180}
clients=${3:-2000}
rate=${4:-2000}
loadgen=$build/tools/loadgen/fleetauth-loadgen
mint=$build/tools/bench/fleetauth-bench-mint
for tool in "$loadgen" "$mint"; do
	[[ -x $tool ]] || {
		echo "error: $tool not found: build it in $build" >&2
		exit 1
	}
done

work=$(mktemp -d /tmp/fleetauth-scale-sustained.XXXXXX)
load_pid=
cleanup()
{
	[[ -z $load_pid ]] || kill "$load_pid" 2>/dev/null || true
	"$SRC_DIR/tools/stack" down "$work/stack" >/dev/null 2>&1 || true
	[[ -n ${SCALE_KEEP:-} ]] || rm -rf "$work"
}
trap cleanup EXIT

"$SRC_DIR/tools/stack" up "$work/stack" --fast-bcrypt --build "$build" \
	>"$work/stack-up.log" 2>&1 || {
	tail -n 20 "$work/stack-up.log" >&2
	exit 1
}
set -a
. "$work/stack/env"
set +a
broker_pid=$(pgrep -f -x "/usr/sbin/mosquitto -c \
${FLEETAUTH_MOSQUITTO_CONFS%%,*}")
port=${MQTT_PORTS%%,*}

tag=u$(openssl rand -hex 3)
total=$((clients + CHURN_CLIENTS * (seconds / SAMPLE_INTERVAL + 1)))
psql -X -q -v ON_ERROR_STOP=1 <<EOF
INSERT INTO carriers (id, name) VALUES ('$tag', 'sustained');
INSERT INTO principals (id, kind)
	SELECT '${tag}d' || i, 'user' FROM generate_series(1, $total) i;
INSERT INTO users (id, carrier_id, role, password_hash)
	SELECT '${tag}d' || i, '$tag', 'driver', 'x'
	FROM generate_series(1, $total) i;
INSERT INTO loads (carrier_id, id, created_by)
	SELECT '$tag', 'l' || i, 'x' FROM generate_series(1, $clients) i;
INSERT INTO load_assignments (carrier_id, load_id, driver_id, assigned_by)
	SELECT '$tag', 'l' || i, '${tag}d' || i, 'x'
	FROM generate_series(1, $clients) i;
EOF
kid=$(psql -X -q -A -t -c \
	"SELECT kid FROM signing_keys WHERE status = 'current'")
"$mint" --key "$FLEETAUTH_SIGNING_KEY" --kid "$kid" --prefix "${tag}d" \
	--count "$total" --carrier "$tag" --issuer "$FLEETAUTH_ISSUER" \
	--audience "$FLEETAUTH_AUDIENCE" --ttl $((seconds + 600)) \
	>"$work/all"
head -n "$clients" "$work/all" >"$work/steady"
sleep 3 # the broker applies the inserted rows through change_log

"$loadgen" --json --port "$port" --clients "$work/steady" \
	--concurrency 64 --hold "$seconds" --pub-rate "$rate" \
	--pub-topic "fleet/$tag/loads/l%v/driver/pos" \
	--sub-topic "fleet/$tag/loads/l%v/driver/#" \
	--timeout $((seconds + 120)) >"$work/steady.json" 2>"$work/steady.err" &
load_pid=$!

printf 'scenario: sustained load, %d clients, %s msg/s, %d s' "$clients" \
	"$rate" "$seconds"
printf ' (shortened), %d fresh CONNECTs every %d s\n' "$CHURN_CLIENTS" \
	"$SAMPLE_INTERVAL"
printf 'time_s rss_kib cpu_ms churn_connected load_average\n'
start=$SECONDS
batch=0
while kill -0 "$load_pid" 2>/dev/null; do
	sleep "$SAMPLE_INTERVAL"
	first=$((clients + batch * CHURN_CLIENTS + 1))
	sed -n "${first},$((first + CHURN_CLIENTS - 1))p" "$work/all" \
		>"$work/churn"
	batch=$((batch + 1))
	churn=$("$loadgen" --json --port "$port" --clients "$work/churn" \
		--concurrency 32 --hold 0 --timeout 30 2>/dev/null |
		jq -r .connected) || churn=failed
	kill -0 "$broker_pid" 2>/dev/null || {
		echo "error: the broker (pid $broker_pid) exited" >&2
		exit 1
	}
	printf '%d %s %d %s %s\n' $((SECONDS - start)) \
		"$(awk '/^VmRSS:/ { print $2 }' "/proc/$broker_pid/status")" \
		$(($(awk '{ print $1 }' "/proc/$broker_pid/schedstat") / 1000000)) \
		"$churn" "$(cut -d' ' -f1 /proc/loadavg)"
done
wait "$load_pid" || true
load_pid=
jq -c '{connected, refused, failed, dropped,
	subscriptions_granted, subscriptions_denied}' "$work/steady.json" ||
	cat "$work/steady.err"
jq -c '{published, publish_rate, publish_denied, delivered,
	delivery_rate, timed_out}' "$work/steady.json" || true
