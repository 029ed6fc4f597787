#!/usr/bin/env bash
# Plugin: the broker's denials reach the audit trail. A refused CONNECT and
# forbidden publishes of a driver appear in audit_events as broker.connect
# and broker.publish rows (actor, target, address, reason), identical
# denials are merged into one row with a count, and an allowed publish
# writes nothing.
#
#   test_denial_audit.sh ENV_FILE
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
for tool in curl jq openssl psql mosquitto_pub; do
	command -v "$tool" >/dev/null || fa_skip "$tool is not installed"
done

run=$(openssl rand -hex 4)
carrier=audit-$run
drv=drv-audit-$run
fa_api POST /v1/carriers "$(jq -cn --arg id "$carrier" \
	'{id: $id, name: "Audit test carrier"}')"
fa_expect_status 201 "create carrier $carrier"
fa_api POST /v1/users "$(jq -cn --arg u "$drv" --arg c "$carrier" \
	'{username: $u, password: "correct horse battery staple 42",
	  role: "driver", carrier: $c}')"
fa_expect_status 201 "create user $drv"
token=$(fa_mint_token "$(fa_claims "$drv" driver "$carrier")")
own=fleet/$carrier/drivers/$drv/status
forbidden=fleet/$carrier/loads/not-assigned-$run/rate

# The broker learns of the new user a moment after the API call.
fa_wait_for "fa_mqtt_pub -i '$drv' -u '$drv' -P '$token' -q 1 \
	-t '$own' -m allowed && [[ \$FA_MQTT_RC == 0 ]]" 15

for _ in 1 2 3 4 5; do
	fa_mqtt_pub -i "$drv" -u "$drv" -P "$token" -q 1 -t "$forbidden" -m x
done
fa_mqtt_pub -i "$drv" -u "$drv" -P "not-a-token" -t "$own" -m x
fa_expect_ne "$FA_MQTT_RC" 0 "CONNECT of $drv with a malformed token"

publish_count()
{
	fa_sql "SELECT coalesce(sum((detail->>'count')::int), 0)
		FROM audit_events WHERE action = 'broker.publish'
		AND actor = '$drv' AND target = '$forbidden'"
}
fa_wait_for "[[ \$(publish_count) == 5 ]]" 15
fa_expect_eq "$(fa_sql "SELECT DISTINCT outcome || ' ' || address || ' ' ||
	(detail->>'reason') || ' ' || (detail->>'client_id')
	FROM audit_events WHERE action = 'broker.publish'
	AND actor = '$drv'")" "denied 127.0.0.1 topic_denied $drv" \
	"outcome, address, reason and client id of the publish denials"
rows=$(fa_sql "SELECT count(*) FROM audit_events
	WHERE action = 'broker.publish' AND actor = '$drv'")
((rows < 5)) ||
	fa_fail "5 identical denials wrote $rows rows; expected them merged"

connect_denials()
{
	fa_sql "SELECT outcome || ' ' || address FROM audit_events
		WHERE action = 'broker.connect' AND actor = '$drv'
		AND detail->>'reason' = 'token_rejected'"
}
fa_wait_for "[[ -n \$(connect_denials) ]]" 15
fa_expect_eq "$(connect_denials)" "denied 127.0.0.1" \
	"outcome and address of the CONNECT refused for its token"

fa_expect_eq "$(fa_sql "SELECT count(*) FROM audit_events
	WHERE action LIKE 'broker.%' AND target = '$own'")" 0 \
	"audit rows for the allowed publish to $own"
fa_log "ok"
