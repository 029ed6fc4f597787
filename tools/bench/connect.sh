#!/usr/bin/env bash
# CONNECT rate of token clients through the fleetauth plugin, against the
# same Mosquitto binary with anonymous access, with a password_file and with
# the dynamic-security plugin. Every broker is a fresh process of its own on
# a free 127.0.0.1 port; the rounds run the brokers interleaved.
#
#   BENCH_ENV=DIR/env tools/bench/connect.sh [CLIENTS [ROUNDS]]
#
# CLIENTS (default 2000) drivers get a fresh access token per round. The
# plugin broker is measured twice per round: "fresh" with tokens it has
# not seen, then "cached" with the same tokens again, which its token cache
# already holds. Prints a results block with medians over the rounds.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$BENCH_DIR/common.sh"

clients=${1:-2000}
rounds=${2:-5}
concurrency=${BENCH_CONCURRENCY:-64}
mqtt_version=${BENCH_MQTT_VERSION:-311}

bench_init connect
bench_log "work folder $BENCH_WORK, tag $BENCH_TAG"
bench_insert_drivers "$clients"

for round in $(seq 1 "$rounds"); do
	bench_mint "$BENCH_WORK/tokens-$round.txt" "$clients"
done
bench_password_clients "$BENCH_WORK/tokens-1.txt" >"$BENCH_WORK/passwords.txt"
bench_password_file "$BENCH_WORK/passwd" "$BENCH_WORK/passwords.txt"
bench_dynsec_config "$BENCH_WORK/dynsec.json" "$BENCH_WORK/passwords.txt" 1 \
	"fleet/$BENCH_TAG/#"

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
EOF
}

declare -A port pid
for name in anonymous plugin password_file dynsec; do
	port[$name]=$(bench_free_port)
	{
		header
		case $name in
		anonymous) printf 'allow_anonymous true\n' ;;
		plugin)
			printf 'allow_anonymous false\n'
			bench_plugin_lines
			;;
		password_file)
			printf 'allow_anonymous false\npassword_file %s\n' \
				"$BENCH_WORK/passwd"
			;;
		dynsec)
			printf 'allow_anonymous false\nplugin %s\n' \
				"$DYNSEC_PLUGIN"
			printf 'plugin_opt_config_file %s\n' \
				"$BENCH_WORK/dynsec.json"
			;;
		esac
		printf 'listener %s 127.0.0.1\n' "${port[$name]}"
	} >"$BENCH_WORK/$name.conf"
	[[ $(id -u) -ne 0 ]] || chown mosquitto:mosquitto "$BENCH_WORK"/*
	bench_start_broker "$name" "${port[$name]}"
	pid[$name]=$BROKER_PID
done

run()
{
	local name=$1 broker=$2 file=$3
	bench_loadgen "$name" "${pid[$broker]}" --port "${port[$broker]}" \
		--clients "$file" \
		--concurrency "$concurrency" --mqtt-version "$mqtt_version" \
		--timeout 60 >/dev/null
}

for round in $(seq 1 "$rounds"); do
	bench_log "round $round of $rounds"
	tokens=$BENCH_WORK/tokens-$round.txt
	# Rotate the order so that no broker always runs first.
	order=(anonymous plugin password_file dynsec)
	shift_by=$(((round - 1) % 4))
	order=("${order[@]:shift_by}" "${order[@]:0:shift_by}")
	for name in "${order[@]}"; do
		case $name in
		anonymous) run anonymous anonymous "$tokens" ;;
		plugin)
			run plugin_fresh plugin "$tokens"
			run plugin_cached plugin "$tokens"
			;;
		*) run "$name" "$name" "$BENCH_WORK/passwords.txt" ;;
		esac
	done
done

cpu_per_connect=$bench_cpu_per_connect_filter
anon=$(bench_field_median anonymous .connect_rate)
printf '\n== CONNECT rate, %d clients, %d rounds, MQTT %s, ' \
	"$clients" "$rounds" "$mqtt_version"
printf '%d pending at most\n' "$concurrency"
bench_machine
anon_cpu=$(bench_field_median anonymous "$cpu_per_connect")
printf '%-15s %11s %6s %10s %6s %10s %9s %8s %7s\n' broker connects/s \
	ratio "CPU us" ratio "median ms" "p99 ms" refused failed
for name in anonymous plugin_fresh plugin_cached password_file dynsec; do
	rate=$(bench_field_median "$name" .connect_rate)
	cpu=$(bench_field_median "$name" "$cpu_per_connect")
	printf '%-15s %11.1f %6s %10.1f %6s %10.2f %9.2f %8s %7s\n' "$name" \
		"$rate" "$(bench_ratio "$rate" "$anon")" \
		"$cpu" "$(bench_ratio "$cpu" "$anon_cpu")" \
		"$(bench_field_median "$name" .connect_latency_ms.median)" \
		"$(bench_field_median "$name" .connect_latency_ms.p99)" \
		"$(bench_field_sum "$name" .refused)" \
		"$(bench_field_sum "$name" '.failed + .dropped')"
done
printf 'per-round connects/s:\n'
for name in anonymous plugin_fresh plugin_cached password_file dynsec; do
	printf '  %-15s %s\n' "$name" "$(jq -r '.connect_rate' \
		"$BENCH_WORK/results/$name.jsonl" | tr '\n' ' ')"
done
