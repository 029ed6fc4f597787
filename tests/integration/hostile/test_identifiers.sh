#!/usr/bin/env bash
# Usernames, client ids and topics that try to break out of the identity
# or topic rules: wildcard and separator characters, invalid UTF-8, topics
# of maximum length and depth. mosquitto_pub cannot send a NUL byte in a
# string, so NUL is covered by the fuzz harnesses only.
set -euo pipefail
. "$(dirname "$0")/common.sh"
hostile_init "$@"
hostile_start_broker identifiers failed_connect_limit=0
hostile_wait_user "$H_DRIVER" driver

drv=$H_DRIVER
token=$(hostile_token "$drv" driver)
status_topic=fleet/$H_CARRIER/drivers/$drv/status

connect_refused()
{
	local what=$1 client_id=$2 username=$3
	hostile_pub -i "$client_id" -u "$username" -P "$token" -q 1 \
		-t "$status_topic" -m x
	fa_expect_ne "$FA_MQTT_RC" 0 "exit code of mosquitto_pub ($what)"
	fa_expect_ne "$FA_MQTT_RC" 124 "exit code ($what; 124 is a timeout)"
}

# Client ids: the identity's id, or id:suffix with an identifier suffix.
hostile_pub -i "$drv:phone-1" -u "$drv" -P "$token" -q 1 \
	-t "$status_topic" -m x
fa_expect_eq "$FA_MQTT_RC" 0 "exit code for client id $drv:phone-1"
for client_id in "$drv/x" "$drv+" "$drv#" "+" "#" "$drv:" "$drv:a/b" \
	"$drv:#" "$drv::x" "$H_DISPATCHER" "$drv-other" " $drv" \
	"$drv:$(printf 'x%.0s' {1..65})"; do
	connect_refused "client id '$client_id'" "$client_id" "$drv"
done
bad_utf8=$(printf '%s\xc3\x28' "$drv")
connect_refused "client id with invalid UTF-8" "$bad_utf8" "$drv"

# Usernames.
for username in "$drv/#" "+" "#" "$drv " "$drv+" \
	"$(printf 'u%.0s' {1..65})" "' OR 1=1 --"; do
	connect_refused "username '$username'" "$drv" "$username"
done
connect_refused "username with invalid UTF-8" "$drv" "$bad_utf8"
connect_refused "username with overlong UTF-8 slash" "$drv" \
	"$(printf '%s\xc0\xaf' "$drv")"

# Topics: longest and deepest the rules allow, and filters that would
# escape them. Mosquitto acknowledges a denied QoS 1 publish in MQTT
# 3.1.1, so the publisher cannot tell; deliveries are checked with a
# subscriber.
watch=$FA_TMP/watch.txt
disp_token=$(hostile_token "$H_DISPATCHER" dispatcher)
# -d prints "received SUBACK"; stdbuf makes it reach the file at once.
stdbuf -oL mosquitto_sub -h 127.0.0.1 -p "$H_PORT" -i "$H_DISPATCHER" \
	-u "$H_DISPATCHER" -P "$disp_token" -q 1 -v -d \
	-t "fleet/$H_CARRIER/loads/$H_LOAD/#" >"$watch" 2>&1 &
sub_pid=$!
fa_on_exit "kill $sub_pid 2>/dev/null"
fa_wait_for "grep -qs 'received SUBACK' '$watch'" 15

# Mosquitto 2.0.11 closed the connection on a 205-level publish and
# delivered a 200-level one, so the test uses 200 levels.
deep=fleet/$H_CARRIER/loads/$H_LOAD/driver
for _ in $(seq 1 195); do
	deep+=/d
done
hostile_pub -i "$drv" -u "$drv" -P "$token" -q 1 -t "$deep" -m deep-ok
fa_expect_eq "$FA_MQTT_RC" 0 "exit code for a 200-level topic: $FA_MQTT_ERR"

long=fleet/$H_CARRIER/loads/$H_LOAD/driver/$(head -c 60000 /dev/zero |
	tr '\0' 'a')
hostile_pub -i "$drv" -u "$drv" -P "$token" -q 1 -t "$long" -m long-ok
fa_expect_eq "$FA_MQTT_RC" 0 "exit code for a 60 KB topic"

# A driver may not publish where it may not, however the topic is written.
for topic in "fleet/$H_CARRIER/loads/$H_LOAD/rate" \
	"fleet/$H_CARRIER/loads/$H_LOAD" \
	"fleet/$H_CARRIER/loads/$H_LOAD/status" \
	"fleet/$H_CARRIER/loads/$H_LOAD//driver" \
	"fleet/$H_CARRIER//loads/$H_LOAD/driver" \
	"fleet/$H_CARRIER/loads/$H_LOAD/./driver" \
	"fleet/$H_CARRIER/loads/$H_LOAD/DRIVER"; do
	hostile_pub -i "$drv" -u "$drv" -P "$token" -q 1 -t "$topic" \
		-m "forbidden $topic"
done
bad_topic=$(printf 'fleet/%s/loads/%s/driver/\xff\xfe' "$H_CARRIER" \
	"$H_LOAD")
hostile_pub -i "$drv" -u "$drv" -P "$token" -q 1 -t "$bad_topic" \
	-m forbidden-utf8
sleep 1
kill "$sub_pid" 2>/dev/null || true
wait "$sub_pid" 2>/dev/null || true
grep -q ' deep-ok$' "$watch" ||
	fa_fail "the 200-level topic was not delivered: $(head -c 300 "$watch")"
grep -q ' long-ok$' "$watch" ||
	fa_fail "the 60 KB topic was not delivered"
if grep -q 'forbidden' "$watch"; then
	fa_fail "a forbidden publish was delivered: $(grep forbidden "$watch" |
		cut -c1-200)"
fi

# Filters a driver may not subscribe: every one gets return code 128 (MQTT
# 3.1.1 "failure"), which mosquitto_sub reports on stderr.
for filter in "fleet/$H_CARRIER/loads/$H_LOAD/#" \
	"fleet/+/loads/$H_LOAD/status" \
	"fleet/$H_CARRIER/loads/+/status" "#" "+/#" '$SYS/#' \
	"\$share/g/fleet/$H_CARRIER/loads/$H_LOAD/rate" '$share//#' \
	"fleet/$H_CARRIER/drivers/+/inbox"; do
	hostile_sub -i "$drv" -u "$drv" -P "$token" -t "$filter" -W 2 -C 1
	fa_expect_contains "$FA_MQTT_ERR$FA_MQTT_OUT" "denied" \
		"mosquitto_sub output for filter '$filter' (rc $FA_MQTT_RC)"
done
kill -0 "$H_BROKER_PID" || fa_fail "the broker exited"
fa_log "ok"
