#!/usr/bin/env bash
# Access windows. The API sets and removes a user's window and names a
# malformed one. The broker ends a session when the window closes and
# rejects CONNECTs outside it (audited as broker.connect with reason
# outside_window). Once the window is removed, the user gets in again.
#
#   test_access_window.sh ENV_FILE
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
for tool in curl jq openssl psql mosquitto_pub mosquitto_sub stdbuf; do
	command -v "$tool" >/dev/null || fa_skip "$tool is not installed"
done

run=$(openssl rand -hex 4)
carrier=win-$run
drv=drv-win-$run
fa_api POST /v1/carriers "$(jq -cn --arg id "$carrier" \
	'{id: $id, name: "Window test carrier", time_zone: "Asia/Tokyo"}')"
fa_expect_status 201 "create carrier $carrier"

# The API: a malformed window is named in the error; a valid one is stored.
user_body()
{
	jq -cn --arg u "$drv" --arg c "$carrier" --arg w "$1" \
		'{username: $u, password: "correct horse battery staple 42",
		  role: "driver", carrier: $c, access_window: $w}'
}
fa_api POST /v1/users "$(user_body 25:00-06:00)"
fa_expect_status 400 "create with access_window 25:00-06:00"
fa_expect_contains "$FA_BODY" 'access_window: got \"25:00-06:00\"' \
	"error for access_window 25:00-06:00"
fa_api POST /v1/users "$(user_body 22:00-06:00)"
fa_expect_status 201 "create $drv with access_window 22:00-06:00"
fa_expect_eq "$(jq -r .access_window <<<"$FA_BODY")" 22:00-06:00 \
	"access_window of the new user"
fa_api PATCH "/v1/users/$drv" '{"access_window": "08:00-08:00"}'
fa_expect_status 400 "PATCH with an empty window"
fa_api PATCH "/v1/users/$drv" '{"access_window": null}'
fa_expect_status 200 "PATCH removing the window"
fa_expect_eq "$(jq -r .access_window <<<"$FA_BODY")" null \
	"access_window after removing it"
fa_expect_eq "$(fa_sql "SELECT coalesce(window_start::text, 'none')
	FROM users WHERE id = '$drv'")" none "stored window after removing it"

token=$(fa_mint_token "$(fa_claims "$drv" driver "$carrier")")
topic=fleet/$carrier/drivers/$drv/inbox
fa_wait_subscribe 15 -i "$drv" -u "$drv" -P "$token" -t "$topic"

# A window that ends 8 s from now, Tokyo time, set to the second in SQL
# (the API takes whole minutes).
fa_sql "UPDATE users SET
	window_start = ((now() AT TIME ZONE 'Asia/Tokyo') - interval '1 hour')::time,
	window_end = ((now() AT TIME ZONE 'Asia/Tokyo') + interval '8 seconds')::time
	WHERE id = '$drv'" >/dev/null
out=$FA_TMP/sub.txt
stdbuf -oL mosquitto_sub -h "$MQTT_HOST" -p "$MQTT_PORT" -i "$drv" \
	-u "$drv" -P "$token" -t "$topic" -d >"$out" 2>&1 </dev/null &
sub_pid=$!
fa_on_exit "kill $sub_pid 2>/dev/null"
fa_wait_for "grep -qs 'received SUBACK' '$out'" 10
fa_log "subscribed inside the window"

# The broker ends the session after the window closes; mosquitto_sub's
# reconnect is then refused and it exits.
fa_wait_for "! fa_pid_running $sub_pid" 30
fa_log "the session ended when the window closed"
fa_mqtt_pub -i "$drv" -u "$drv" -P "$token" -t "$topic" -m late
fa_expect_ne "$FA_MQTT_RC" 0 "CONNECT outside the window"
grep -q "outside the user's access window" \
	"$FLEETAUTH_STACK_DIR/logs/broker-1.log" ||
	fa_fail "the broker log has no line about the access window"
fa_wait_for "[[ -n \$(fa_sql \"SELECT 1 FROM audit_events
	WHERE action = 'broker.connect' AND actor = '$drv'
	AND detail->>'reason' = 'outside_window' LIMIT 1\") ]]" 15

# Removing the window lets the user in again once the plugin has asked
# again (within 15 s). The test waits for the broker's log line rather than
# retrying CONNECTs, which would trip the failed-CONNECT throttle.
log=$FLEETAUTH_STACK_DIR/logs/broker-1.log
seen=$(grep -c 'users outside their access window' "$log" || true)
fa_api PATCH "/v1/users/$drv" '{"access_window": null}'
fa_expect_status 200 "PATCH removing the window"
fa_wait_for "(( \$(grep -c 'users outside their access window' \
	'$log') > $seen ))" 30
fa_mqtt_pub -i "$drv" -u "$drv" -P "$token" -t "$topic" -m back
fa_expect_eq "$FA_MQTT_RC" 0 "CONNECT after the window was removed: $FA_MQTT_ERR"
fa_log "ok"
