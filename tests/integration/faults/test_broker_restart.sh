#!/usr/bin/env bash
# The broker restarts. A subscriber reconnects and receives again, and the
# plugin's state is loaded anew: a user created while the broker was down
# can connect, and a user disabled meanwhile cannot.
set -euo pipefail
. "$(dirname "$0")/common.sh"
faults_init "$@"
faults_private_stack

carrier=fc-$FAULTS_RUN
drv=$(faults_user drv)
disp=disp-$FAULTS_RUN
victim=$(faults_user victim)
fa_api POST /v1/users "$(jq -cn --arg u "$disp" --arg c "$carrier" \
	--arg p "$FAULTS_PASSWORD" \
	'{username: $u, password: $p, role: "dispatcher", carrier: $c}')"
fa_expect_status 201 "create dispatcher $disp"
topic=fleet/$carrier/drivers/$drv/status

token_for()
{
	fa_mint_token "$(fa_claims "$1" "$2" "$carrier")"
}

publish_as()
{
	local user=$1 role=$2 message=$3
	fa_mqtt_pub -i "$user" -u "$user" -P "$(token_for "$user" "$role")" \
		-q 1 -t "fleet/$carrier/drivers/$user/status" -m "$message"
}

# The dispatcher's subscriber; mosquitto_sub reconnects and subscribes
# again on its own after a lost connection.
out=$FA_TMP/sub.txt
disp_token=$(token_for "$disp" dispatcher)
fa_wait_subscribe 15 -i "$disp" -u "$disp" -P "$disp_token" -t "$topic"
mosquitto_sub -h "$MQTT_HOST" -p "$MQTT_PORT" -i "$disp" -u "$disp" \
	-P "$disp_token" -q 1 -t "$topic" >"$out" 2>&1 &
sub_pid=$!
fa_on_exit "kill $sub_pid 2>/dev/null"
fa_wait_for "publish_as $drv driver before && grep -q '^before$' '$out'" 15

broker_pid=$(faults_pid broker-1)
conf=${FLEETAUTH_MOSQUITTO_CONFS%%,*}
kill -TERM "$broker_pid"
fa_wait_for "! kill -0 $broker_pid 2>/dev/null" 15
fa_log "broker stopped"

# Changes while the broker is down.
newcomer=$(faults_user newcomer)
fa_api PATCH "/v1/users/$victim" '{"status": "disabled"}'
fa_expect_status 200 "disable $victim"

setsid mosquitto -c "$conf" </dev/null \
	>>"$FLEETAUTH_STACK_DIR/logs/broker-1.log" 2>&1 &
new_pid=$!
fa_on_exit "kill $new_pid 2>/dev/null"
fa_wait_for "[[ -n \$(ss -Hltn 'sport = :$MQTT_PORT') ]]" 30
fa_log "broker started again"

fa_wait_for "publish_as $drv driver after && grep -q '^after$' '$out'" 20
fa_log "the subscriber reconnected and received"

publish_as "$newcomer" driver hello
fa_expect_eq "$FA_MQTT_RC" 0 \
	"publish by $newcomer, created while the broker was down: $FA_MQTT_ERR"
publish_as "$victim" driver hello
fa_expect_ne "$FA_MQTT_RC" 0 \
	"publish by $victim, disabled while the broker was down"
fa_log "ok"
