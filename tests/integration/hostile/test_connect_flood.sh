#!/usr/bin/env bash
# Thousands of failed CONNECTs from one address: after failed_connect_limit
# failures within failed_connect_window the plugin refuses that address,
# even with a valid token, until the window ends. Clients from another
# address (here [::1]) keep working, and the broker stays responsive.
set -euo pipefail
. "$(dirname "$0")/common.sh"
hostile_init "$@"
[[ -n $(ip -6 addr show lo 2>/dev/null | grep '::1') ]] ||
	fa_skip "the loopback interface has no ::1 address"

readonly LIMIT=50
# The flood must fit into one window, or the count restarts in the middle:
# 1500 CONNECTs take about 10 s with 16 clients in parallel.
readonly WINDOW=40 # seconds
readonly FLOOD=1500
H_WITH_V6=1 hostile_start_broker flood failed_connect_limit=$LIMIT \
	failed_connect_window=$WINDOW

drv=$H_DRIVER
disp=$H_DISPATCHER
# Wait until the plugin has loaded the users. Connect from ::1, so that
# 127.0.0.1 has no failure yet.
token=$(hostile_token "$drv" driver)
fa_wait_for "fa_mqtt_run mosquitto_pub -h ::1 -p $H_PORT6 -i $drv -u $drv \
	-P '$token' -q 1 -t fleet/$H_CARRIER/drivers/$drv/status -m ready &&
	[[ \$FA_MQTT_RC == 0 ]]" 15

# The flood: FLOOD CONNECTs with a bad token, 16 at a time.
started=$SECONDS
seq 1 "$FLOOD" | xargs -P 16 -I{} timeout 10 mosquitto_pub -h 127.0.0.1 \
	-p "$H_PORT" -i "$drv" -u "$drv" -P "bad-token-{}" -t x -m x \
	>/dev/null 2>&1 || true
elapsed=$((SECONDS - started))
fa_log "$FLOOD failed CONNECTs took $elapsed s"
((elapsed < WINDOW - 5)) ||
	fa_fail "the flood took $elapsed s, too close to the $WINDOW s window" \
		"for the throttle check; lower FLOOD"
kill -0 "$H_BROKER_PID" || fa_fail "the broker exited during the flood"

# 127.0.0.1 is now refused even with a valid token.
hostile_expect_refused "valid token from a throttled address" "$drv" \
	"$(hostile_token "$drv" driver)"
grep -q 'too many failed CONNECTs' "$H_BROKER_LOG" ||
	fa_fail "the broker log has no throttle denial line"

# ::1 is another address: a subscriber and a publisher there still work,
# and a message arrives within 5 s.
out=$FA_TMP/v6.txt
# -d prints "received SUBACK"; stdbuf makes it reach the file at once.
timeout 10 stdbuf -oL mosquitto_sub -h ::1 -p "$H_PORT6" -i "$disp" \
	-u "$disp" -P "$(hostile_token "$disp" dispatcher)" -C 1 -W 8 -d \
	-t "fleet/$H_CARRIER/drivers/$drv/status" >"$out" 2>&1 &
sub_pid=$!
fa_wait_for "grep -qs 'received SUBACK' '$out'" 8
sent_ns=$(date +%s%N)
fa_mqtt_run mosquitto_pub -h ::1 -p "$H_PORT6" -i "$drv" -u "$drv" \
	-P "$(hostile_token "$drv" driver)" -q 1 \
	-t "fleet/$H_CARRIER/drivers/$drv/status" -m during-throttle
fa_expect_eq "$FA_MQTT_RC" 0 "publish from ::1 during the throttle"
wait "$sub_pid" || true
got_ms=$((($(date +%s%N) - sent_ns) / 1000000))
grep -qx during-throttle "$out" ||
	fa_fail "message not received on ::1; subscriber output: $(cat "$out")"
((got_ms < 5000)) ||
	fa_fail "the message took $got_ms ms to arrive (limit 5000 ms)"
fa_log "message from ::1 arrived after $got_ms ms during the throttle"

# After the window, 127.0.0.1 may connect again.
sleep "$((WINDOW - (SECONDS - started) + 2))"
hostile_expect_accepted "valid token after the window" "$drv" \
	"$(hostile_token "$drv" driver)"
fa_log "ok"
