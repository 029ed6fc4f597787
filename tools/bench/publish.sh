#!/usr/bin/env bash
# Publish throughput with the fleetauth plugin's ACL checks against the same
# Mosquitto binary without checks (anonymous), with 1,000 and with
# 1,000,000 load assignments loaded, and against the dynamic-security
# plugin with a growing ACL list. Also records the plugin's snapshot load
# time and the broker's resident memory with 1,000,000 assignments.
#
#   BENCH_ENV=DIR/env tools/bench/publish.sh [CLIENTS [ROUNDS [HOLD]]]
#
# CLIENTS (default 20) drivers each publish as fast as their socket takes
# it (QoS 0, 64-byte payload) to fleet/C/loads/L/driver/pos of their own
# load and subscribe to fleet/C/loads/L/driver/#, so every message costs
# the plugin one PUBLISH check and one delivery check. HOLD (default 4)
# seconds per run. The rows stay in the stack's database: use a throwaway
# stack. BENCH_ASSIGNMENTS sets the large count (default 1000000).
#
# The 999,000 extra assignments are inserted with the change-log trigger of
# load_assignments disabled for that one transaction, so that the broker
# started before the insert keeps its 1,000-assignment state and the two
# plugin brokers can run interleaved.
#
# BENCH_BASELINE_PLUGIN=PATH adds two more brokers, base_1k and base_1m,
# that load another build of fleetauth_plugin.so (for example one built
# from the previous commit) with the same options, for a before-and-after
# comparison in one run. BENCH_DYNSEC=0 leaves out the dynamic-security
# brokers.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$BENCH_DIR/common.sh"

clients=${1:-20}
rounds=${2:-4}
hold=${3:-4}
small=1000
large=${BENCH_ASSIGNMENTS:-1000000}
filler_drivers=1000
dynsec_sizes=(1 100 1000)
[[ ${BENCH_DYNSEC:-1} != 0 ]] || dynsec_sizes=()
baseline=${BENCH_BASELINE_PLUGIN:-}
if [[ -n $baseline && ! -r $baseline ]]; then
	printf 'bench: error: BENCH_BASELINE_PLUGIN %s is not a readable file\n' \
		"$baseline" >&2
	exit 1
fi

bench_init publish
bench_log "work folder $BENCH_WORK, tag $BENCH_TAG"
bench_insert_drivers "$clients"

# Inserts loads and assignments: driver i gets load l<i>, and filler
# drivers x1..x1000 get loads f<first>..f<last>.
insert_assignments()
{
	local first=$1 last=$2
	psql -X -q -v ON_ERROR_STOP=1 <<EOF
BEGIN;
ALTER TABLE load_assignments DISABLE TRIGGER load_assignments_change;
INSERT INTO loads (carrier_id, id, created_by)
	SELECT '$BENCH_TAG', 'f' || i, 'bench'
	FROM generate_series($first, $last) i;
INSERT INTO load_assignments (carrier_id, load_id, driver_id, assigned_by)
	SELECT '$BENCH_TAG', 'f' || i,
		'${BENCH_TAG}x' || (i % $filler_drivers + 1), 'bench'
	FROM generate_series($first, $last) i;
ALTER TABLE load_assignments ENABLE TRIGGER load_assignments_change;
COMMIT;
EOF
}

psql -X -q -v ON_ERROR_STOP=1 <<EOF
INSERT INTO principals (id, kind)
	SELECT '${BENCH_TAG}x' || i, 'user'
	FROM generate_series(1, $filler_drivers) i;
INSERT INTO users (id, carrier_id, role, password_hash)
	SELECT '${BENCH_TAG}x' || i, '$BENCH_TAG', 'driver', 'x'
	FROM generate_series(1, $filler_drivers) i;
INSERT INTO loads (carrier_id, id, created_by)
	SELECT '$BENCH_TAG', '${BENCH_TAG}l' || i, 'bench'
	FROM generate_series(1, $clients) i;
INSERT INTO load_assignments (carrier_id, load_id, driver_id, assigned_by)
	SELECT '$BENCH_TAG', '${BENCH_TAG}l' || i, '${BENCH_TAG}d' || i, 'bench'
	FROM generate_series(1, $clients) i;
EOF
insert_assignments 1 $((small - clients))

bench_mint "$BENCH_WORK/tokens.txt" "$clients"
bench_password_clients "$BENCH_WORK/tokens.txt" >"$BENCH_WORK/passwords.txt"
for size in "${dynsec_sizes[@]}"; do
	bench_dynsec_config "$BENCH_WORK/dynsec_$size.json" \
		"$BENCH_WORK/passwords.txt" "$size" \
		"fleet/$BENCH_TAG/loads/+/driver/#"
done

header()
{
	cat <<EOF
per_listener_settings false
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
connection_messages false
max_queued_messages 1000
EOF
}

declare -A port pid
start()
{
	local name=$1
	port[$name]=$(bench_free_port)
	{
		header
		case $name in
		anonymous) printf 'allow_anonymous true\n' ;;
		plugin_*)
			printf 'allow_anonymous false\n'
			bench_plugin_lines
			;;
		base_*)
			printf 'allow_anonymous false\n'
			bench_plugin_lines |
				sed "s|^plugin .*|plugin $baseline|"
			;;
		dynsec_*)
			printf 'allow_anonymous false\nplugin %s\n' \
				"$DYNSEC_PLUGIN"
			printf 'plugin_opt_config_file %s\n' \
				"$BENCH_WORK/$name.json"
			;;
		esac
		printf 'listener %s 127.0.0.1\n' "${port[$name]}"
	} >"$BENCH_WORK/$name.conf"
	[[ $(id -u) -ne 0 ]] || chown -R mosquitto:mosquitto "$BENCH_WORK"
	bench_start_broker "$name" "${port[$name]}"
	pid[$name]=$BROKER_PID
}

snapshot_ms()
{
	sed -n 's/.*snapshot loaded in \([0-9]*\) ms.*/\1/p' \
		"$BENCH_WORK/$1.log" | head -n 1
}

brokers=(anonymous plugin_1k)
[[ -z $baseline ]] || brokers+=(base_1k)
for size in "${dynsec_sizes[@]}"; do
	brokers+=("dynsec_$size")
done
for name in "${brokers[@]}"; do
	start "$name"
done
sleep 1
rss_small=$(bench_rss_kib "${pid[plugin_1k]}")

bench_log "inserting $((large - small)) more assignments"
insert_started=$(date +%s)
insert_assignments $((small - clients + 1)) $((large - clients))
bench_log "insert took $(($(date +%s) - insert_started)) s"
start plugin_1m
brokers+=(plugin_1m)
if [[ -n $baseline ]]; then
	start base_1m
	brokers+=(base_1m)
fi
sleep 1
rss_large=$(bench_rss_kib "${pid[plugin_1m]}")
rss_small_after=$(bench_rss_kib "${pid[plugin_1k]}")

# Topic prefix of each client's load; %v is the driver's number.
load_topic=fleet/$BENCH_TAG/loads/${BENCH_TAG}l%v

run()
{
	local name=$1 file=$BENCH_WORK/tokens.txt
	[[ $name != dynsec_* ]] || file=$BENCH_WORK/passwords.txt
	bench_loadgen "$name" "${pid[$name]}" --port "${port[$name]}" \
		--clients "$file" --hold "$hold" --pub-rate max \
		--pub-topic "$load_topic/driver/pos" \
		--sub-topic "$load_topic/driver/#" \
		--timeout $((hold + 60)) >/dev/null
}

count=${#brokers[@]}
for round in $(seq 1 "$rounds"); do
	bench_log "round $round of $rounds"
	shift_by=$(((round - 1) % count))
	order=("${brokers[@]:shift_by}" "${brokers[@]:0:shift_by}")
	for name in "${order[@]}"; do
		run "$name"
	done
done

# Broker CPU time per delivered message in nanoseconds; each message is one
# PUBLISH in and one delivery out.
cpu_per_message='if .delivered_total > 0
	then .broker_cpu_ms * 1000000 / .delivered_total else 0 end'
anon=$(bench_field_median anonymous .delivery_rate)
anon_cpu=$(bench_field_median anonymous "$cpu_per_message")
printf '\n== Publish throughput, %d publishers, QoS 0, %d rounds of %s s\n' \
	"$clients" "$rounds" "$hold"
bench_machine
printf '%-13s %12s %6s %12s %6s %8s %9s\n' broker delivered/s ratio \
	"CPU ns/msg" ratio dropped "sub denied"
shown=(anonymous plugin_1k plugin_1m)
[[ -z $baseline ]] || shown+=(base_1k base_1m)
for size in "${dynsec_sizes[@]}"; do
	shown+=("dynsec_$size")
done
for name in "${shown[@]}"; do
	rate=$(bench_field_median "$name" .delivery_rate)
	cpu=$(bench_field_median "$name" "$cpu_per_message")
	printf '%-13s %12.1f %6s %12.0f %6s %8s %9s\n' "$name" "$rate" \
		"$(bench_ratio "$rate" "$anon")" "$cpu" \
		"$(bench_ratio "$cpu" "$anon_cpu")" \
		"$(bench_field_sum "$name" '.dropped + .failed + .refused')" \
		"$(bench_field_sum "$name" .subscriptions_denied)"
done
printf 'per-round delivered/s:\n'
for name in "${brokers[@]}"; do
	printf '  %-13s %s\n' "$name" "$(jq -r '.delivery_rate' \
		"$BENCH_WORK/results/$name.jsonl" | tr '\n' ' ')"
done
printf '\n== Snapshot of %d assignments\n' "$large"
printf 'snapshot load: %s ms with %d assignments, %s ms with %d\n' \
	"$(snapshot_ms plugin_1m)" "$large" "$(snapshot_ms plugin_1k)" "$small"
printf 'broker VmRSS: %s KiB with %d assignments, %s KiB with %d ' \
	"$rss_large" "$large" "$rss_small" "$small"
printf '(%s KiB after the insert)\n' "$rss_small_after"
printf 'memory per assignment: %s bytes\n' "$(awk -v a="$rss_large" \
	-v b="$rss_small" -v n=$((large - small)) \
	'BEGIN { printf "%.0f", (a - b) * 1024 / n }')"
