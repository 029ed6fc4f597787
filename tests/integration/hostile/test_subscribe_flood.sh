#!/usr/bin/env bash
# Subscribe floods: several clients each send one SUBSCRIBE with thousands
# of filters (allowed, denied, wildcards, $share, $SYS). The broker must reply
# to them and keep delivering other clients' messages within 5 s.
set -euo pipefail
. "$(dirname "$0")/common.sh"
hostile_init "$@"
hostile_start_broker subflood failed_connect_limit=0
hostile_wait_user "$H_DRIVER" driver

readonly FILTERS=4000
readonly CLIENTS=4
drv=$H_DRIVER
disp=$H_DISPATCHER
c=$H_CARRIER

# One argument file per client: -t FILTER pairs.
args=$FA_TMP/filters.txt
for i in $(seq 1 "$FILTERS"); do
	case $((i % 8)) in
	0) printf -- '-t\nfleet/%s/loads/%s/status/%d\n' "$c" "$H_LOAD" "$i" ;;
	1) printf -- '-t\nfleet/%s/loads/+/x%d/#\n' "$c" "$i" ;;
	2) printf -- '-t\nfleet/+/devices/d%d/telemetry\n' "$i" ;;
	3) printf -- '-t\n$share/g%d/fleet/%s/loads/%s/driver/#\n' "$i" "$c" \
		"$H_LOAD" ;;
	4) printf -- '-t\n$SYS/broker/x%d\n' "$i" ;;
	5) printf -- '-t\n+/+/+/+/+/%d/#\n' "$i" ;;
	6) printf -- '-t\nfleet/%s/drivers/%s/inbox/%d\n' "$c" "$drv" "$i" ;;
	*) printf -- '-t\nfleet/other-%d/loads/%s/rate\n' "$i" "$H_LOAD" ;;
	esac
done >"$args"
mapfile -t filter_args <"$args"

# Measures one delivery from the driver to a dispatcher; prints ms.
delivery_ms()
{
	local out=$FA_TMP/delivery.txt sub_pid sent_ns message=$1
	timeout 15 mosquitto_sub -h 127.0.0.1 -p "$H_PORT" -i "$disp:probe" \
		-u "$disp" -P "$(hostile_token "$disp" dispatcher)" -C 1 \
		-W 12 -t "fleet/$c/drivers/$drv/status" >"$out" 2>&1 &
	sub_pid=$!
	sleep 0.3
	sent_ns=$(date +%s%N)
	hostile_pub -i "$drv:probe" -u "$drv" -P "$(hostile_token "$drv" driver)" \
		-q 1 -t "fleet/$c/drivers/$drv/status" -m "$message"
	wait "$sub_pid" || true
	[[ $(cat "$out") == "$message" ]] ||
		fa_fail "probe $message not delivered: $(cat "$out")"
	printf '%s\n' "$((($(date +%s%N) - sent_ns) / 1000000))"
}

baseline=$(delivery_ms baseline)
fa_log "delivery before the flood: $baseline ms"

token=$(hostile_token "$drv" driver)
pids=()
for n in $(seq 1 "$CLIENTS"); do
	timeout 60 mosquitto_sub -h 127.0.0.1 -p "$H_PORT" -i "$drv:flood$n" \
		-u "$drv" -P "$token" -W 20 "${filter_args[@]}" \
		>"$FA_TMP/flood$n.out" 2>&1 &
	pids+=("$!")
done
sleep 1
during=$(delivery_ms during-flood)
fa_log "delivery during the flood ($CLIENTS x $FILTERS filters): $during ms"
((during < 5000)) ||
	fa_fail "delivery during the flood took $during ms (limit 5000 ms)"
for pid in "${pids[@]}"; do
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
done
for n in $(seq 1 "$CLIENTS"); do
	if grep -qi 'error\|lost' "$FA_TMP/flood$n.out"; then
		fa_fail "flood client $n: $(head -c 300 "$FA_TMP/flood$n.out")"
	fi
done
kill -0 "$H_BROKER_PID" || fa_fail "the broker exited during the flood"
after=$(delivery_ms after-flood)
fa_log "delivery after the flood: $after ms"
fa_log "ok"
