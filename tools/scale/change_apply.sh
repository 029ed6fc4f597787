#!/usr/bin/env bash
# Time for one change to apply: a driver publishes to its own load every
# 10 ms and subscribes to it. One DELETE removes the assignment, after
# which the broker must deny the publishes and stop the deliveries. The
# script measures the time from the start of the DELETE to the send time of
# the first message not delivered. It does so ROUNDS times on the stack's
# broker, whose state is small. Then it repeats the rounds on a broker whose
# snapshot contains ASSIGNMENTS more assignments.
#
#   tools/scale/change_apply.sh BUILD_DIR [ASSIGNMENTS [ROUNDS]]
#
# Defaults: 1000000 assignments, 3 rounds. Starts its own stack in a
# temporary folder with tools/stack and stops it on exit. The insert of
# 1,000,000 rows takes several minutes.
set -euo pipefail

readonly SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly PUBLISH_INTERVAL=0.01 # seconds between the driver's publishes
build=$(cd "${1:?usage: change_apply.sh BUILD_DIR [ASSIGNMENTS [ROUNDS]]}" &&
	pwd)
assignments=${2:-1000000}
rounds=${3:-3}
mint=$build/tools/bench/fleetauth-bench-mint
[[ -x $mint ]] || {
	echo "error: $mint not found: build it in $build" >&2
	exit 1
}

work=$(mktemp -d /tmp/fleetauth-scale-change.XXXXXX)
pids=()
cleanup()
{
	local pid
	for pid in "${pids[@]}"; do
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

tag=c$(openssl rand -hex 3)
driver=${tag}d1
psql -X -q -v ON_ERROR_STOP=1 <<EOF
INSERT INTO carriers (id, name) VALUES ('$tag', 'change');
INSERT INTO principals (id, kind) VALUES ('$driver', 'user');
INSERT INTO users (id, carrier_id, role, password_hash)
	VALUES ('$driver', '$tag', 'driver', 'x');
INSERT INTO loads (carrier_id, id, created_by) VALUES ('$tag', 'L1', 'x');
EOF
kid=$(psql -X -q -A -t -c \
	"SELECT kid FROM signing_keys WHERE status = 'current'")
token=$("$mint" --key "$FLEETAUTH_SIGNING_KEY" --kid "$kid" --ttl 3600 \
	--prefix "${tag}d" --count 1 --carrier "$tag" \
	--issuer "$FLEETAUTH_ISSUER" --audience "$FLEETAUTH_AUDIENCE" |
	awk '{ print $3 }')
topic="fleet/$tag/loads/L1/driver/pos"

# Measures one unassignment on the broker at port. Prints the milliseconds
# from the start of the DELETE to the send time of the first message that
# was not delivered.
measure_once()
{
	local port=$1 out=$work/messages sub_pid pub_pid commit_ns last_ns
	psql -X -q -c "INSERT INTO load_assignments (carrier_id, load_id,
		driver_id, assigned_by) VALUES ('$tag', 'L1', '$driver', 'x')"
	sleep 2 # the broker applies the insert through change_log
	mosquitto_sub -h 127.0.0.1 -p "$port" -i "$driver:sub" -u "$driver" \
		-P "$token" -t "$topic" >"$out" 2>/dev/null &
	sub_pid=$!
	pids+=("$sub_pid")
	sleep 1
	# The loop ends when date fails on the closed pipe after the kill.
	while date +%s%N; do
		sleep "$PUBLISH_INTERVAL"
	done | mosquitto_pub -h 127.0.0.1 -p "$port" -i "$driver:pub" \
		-u "$driver" -P "$token" -t "$topic" -l 2>/dev/null &
	pub_pid=$!
	pids+=("$pub_pid")
	sleep 2
	[[ -s $out ]] || {
		echo "error: no message delivered before the change" >&2
		exit 1
	}
	commit_ns=$(date +%s%N)
	psql -X -q -c "DELETE FROM load_assignments WHERE carrier_id = '$tag'
		AND load_id = 'L1'"
	sleep 3
	kill "$pub_pid" "$sub_pid" 2>/dev/null || true
	wait "$sub_pid" 2>/dev/null || true
	last_ns=$(tail -n 1 "$out")
	# The first message not delivered was sent one interval after the last.
	awk -v l="$last_ns" -v c="$commit_ns" -v i="$PUBLISH_INTERVAL" \
		'BEGIN { printf "%d\n", (l - c) / 1e6 + i * 1000 }'
}

broker_port=${MQTT_PORTS%%,*}
for ((round = 1; round <= rounds; round++)); do
	printf 'small state, round %d: %s ms\n' "$round" \
		"$(measure_once "$broker_port")"
done

log "inserting $assignments assignments"
psql -X -q -v ON_ERROR_STOP=1 <<EOF
INSERT INTO principals (id, kind)
	SELECT '${tag}x' || i, 'user' FROM generate_series(1, 10000) i;
INSERT INTO users (id, carrier_id, role, password_hash)
	SELECT '${tag}x' || i, '$tag', 'driver', 'x'
	FROM generate_series(1, 10000) i;
BEGIN;
-- Without the change_log trigger, the stack's broker does not apply the
-- rows one by one; the new broker below loads them in its snapshot.
ALTER TABLE load_assignments DISABLE TRIGGER load_assignments_change;
INSERT INTO loads (carrier_id, id, created_by)
	SELECT '$tag', 'f' || i, 'x' FROM generate_series(1, $assignments) i;
INSERT INTO load_assignments (carrier_id, load_id, driver_id, assigned_by)
	SELECT '$tag', 'f' || i, '${tag}x' || (i % 10000 + 1), 'x'
	FROM generate_series(1, $assignments) i;
ALTER TABLE load_assignments ENABLE TRIGGER load_assignments_change;
COMMIT;
EOF

port=$((20000 + RANDOM % 12000))
while [[ -n $(ss -Htan "sport = :$port") ]]; do
	port=$((20000 + RANDOM % 12000))
done
{
	printf 'per_listener_settings false\nallow_anonymous false\n'
	printf 'persistence false\nlog_dest stderr\n'
	grep -E '^(plugin|plugin_opt_[a-z_]+) ' \
		"${FLEETAUTH_MOSQUITTO_CONFS%%,*}"
	printf 'listener %s 127.0.0.1\n' "$port"
} >"$work/big.conf"
chown -R mosquitto:mosquitto "$work" 2>/dev/null || true
/usr/sbin/mosquitto -c "$work/big.conf" >"$work/big.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do
	grep -q 'running' "$work/big.log" && break
	sleep 0.1
done
grep -m 1 'snapshot loaded' "$work/big.log" >&2 || true
for ((round = 1; round <= rounds; round++)); do
	printf 'large state, round %d: %s ms\n' "$round" \
		"$(measure_once "$port")"
done
