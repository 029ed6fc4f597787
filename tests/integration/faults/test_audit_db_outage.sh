#!/usr/bin/env bash
# PostgreSQL is down while the broker denies publishes. The broker keeps
# deciding from memory, queues the denials, and writes them to the audit
# trail once the database is back: none is lost.
set -euo pipefail
. "$(dirname "$0")/common.sh"
faults_init "$@"
faults_private_stack

carrier=fc-$FAULTS_RUN
drv=$(faults_user drv)
token=$(fa_mint_token "$(fa_claims "$drv" driver "$carrier")")
own=fleet/$carrier/drivers/$drv/status
forbidden=fleet/$carrier/loads/not-assigned/rate

# Wait until the broker has loaded the user.
fa_wait_for "fa_mqtt_pub -i '$drv' -u '$drv' -P '$token' -q 1 \
	-t '$own' -m ready && [[ \$FA_MQTT_RC == 0 ]]" 15

faults_kill_postgres
fa_log "PostgreSQL killed"
for _ in 1 2 3 4; do
	fa_mqtt_pub -i "$drv" -u "$drv" -P "$token" -q 1 -t "$forbidden" -m x
	fa_expect_eq "$FA_MQTT_RC" 0 \
		"publish with the database down (the broker decides from memory)"
done
# Let the plugin try to write the batch and fail at least once.
sleep 2
faults_start_postgres
fa_log "PostgreSQL started again"

denied()
{
	fa_sql "SELECT coalesce(sum((detail->>'count')::int), 0)
		FROM audit_events WHERE action = 'broker.publish'
		AND actor = '$drv' AND target = '$forbidden'"
}
# The plugin's reconnect delay doubles up to 30 s while the database is
# away; 45 s covers it.
fa_wait_for "[[ \$(denied 2>/dev/null) == 4 ]]" 45
grep -q 'audit connection failed' "$FAULTS_STACK/logs/broker-1.log" ||
	fa_fail "the broker log has no line about the failed audit connection"
fa_log "ok: 4 denials made while the database was down were written later"
