#!/usr/bin/env bash
# Token-signing key rotation without downtime. After "fleetauthctl
# signing-keys rotate", a token signed before the rotation still works at
# the broker and the API until it expires. New logins get tokens with the
# new kid, and the broker accepts those too, because the plugin learns the
# new key from the change feed. The stack's own key is current again at
# exit.
. "$(dirname "$0")/common.sh"
ops_init "$@"

carrier=$(ops_carrier rot)
driver=$(ops_user drv driver "$carrier")
dispatcher=$(ops_user disp dispatcher "$carrier")
status_topic=fleet/$carrier/drivers/$driver/status

stack_kid=$(fa_current_kid)
restore_stack_key()
{
	fa_sql "UPDATE signing_keys SET status = 'retired'
		WHERE status IN ('current', 'previous') AND kid <> '$stack_kid';
		UPDATE signing_keys SET status = 'current', publish_until = NULL
		WHERE kid = '$stack_kid'" >/dev/null
}
fa_on_exit restore_stack_key

old_token=$(ops_login "$driver")
fa_expect_eq "$(ops_jwt_part "$old_token" 0 | jq -r .kid)" "$stack_kid" \
	"kid before the rotation"

out=$(FLEETAUTH_API_KEY=$FLEETAUTH_ADMIN_KEY "$FLEETAUTHCTL" --json \
	signing-keys rotate) || fa_fail "fleetauthctl signing-keys rotate failed"
new_kid=$(jq -r .kid <<<"$out")
fa_expect_ne "$new_kid" "$stack_kid" "kid of the rotated key"
fa_expect_eq "$(fa_current_kid)" "$new_kid" "current key after rotate"
fa_expect_eq "$(fa_sql "SELECT status FROM signing_keys
	WHERE kid = '$stack_kid'")" previous "status of the old key"
listing=$(FLEETAUTH_API_KEY=$FLEETAUTH_ADMIN_KEY "$FLEETAUTHCTL" \
	signing-keys list) || fa_fail "fleetauthctl signing-keys list failed"
fa_expect_contains "$listing" "$new_kid" "signing-keys list"

new_token=$(ops_login "$driver")
fa_expect_eq "$(ops_jwt_part "$new_token" 0 | jq -r .kid)" "$new_kid" \
	"kid of a token issued after the rotation"
dispatcher_token=$(ops_login "$dispatcher")

# The API accepts both tokens.
fa_expect_eq "$(ops_get_status "$old_token" /v1/mfa/device-keys)" 200 \
	"API call with the token signed before the rotation"
fa_expect_eq "$(ops_get_status "$new_token" /v1/mfa/device-keys)" 200 \
	"API call with the token signed after the rotation"

# The broker accepts both: a dispatcher (new kid) reads the driver's status
# topic while the driver publishes with the old and then the new token.
received=$FA_TMP/received
fa_wait_subscribe 15 -u "$dispatcher" -P "$dispatcher_token" \
	-i "$dispatcher:rot" -t "$status_topic"
fa_mqtt_sub_bg "$received" -u "$dispatcher" -P "$dispatcher_token" \
	-i "$dispatcher:rot" -t "$status_topic" -q 1
sleep 1
fa_pid_running "$FA_SUB_PID" ||
	fa_fail "broker refused the token with the new kid:" \
		"$(cat "$received.err")"

# Publishes payload as the driver with token until the subscriber has it
# (the subscription may still be in flight for the first attempts).
publish_until_received()
{
	local token=$1 payload=$2 try
	for try in $(seq 1 50); do
		fa_mqtt_pub -u "$driver" -P "$token" -i "$driver:rot" -q 1 \
			-t "$status_topic" -m "$payload"
		((FA_MQTT_RC == 0)) ||
			fa_fail "publish with $payload token failed:" \
				"$FA_MQTT_ERR"
		grep -qx "$payload" "$received" && return 0
		sleep 0.2
	done
	fa_fail "the subscriber never received $payload"
}
publish_until_received "$old_token" old-kid
publish_until_received "$new_token" new-kid

echo "PASS: $(basename "$0")"
