#!/usr/bin/env bash
# Loads and assignments: who may create and assign, carrier isolation,
# driver checks, and the change_log row and NOTIFY that every assignment
# change produces for the brokers.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
. "$(dirname "$0")/common.sh"

c1=haul-$SFX
c2=ship-$SFX
create_carrier "$c1"
create_carrier "$c2"
create_user "disp-$SFX" dispatcher "$c1"
create_user "ana-$SFX" fleet_analyst "$c1"
create_user "drv-$SFX" driver "$c1"
create_user "drv2-$SFX" driver "$c1"
create_user "other-$SFX" driver "$c2"
create_user "fm2-$SFX" fleet_manager "$c2"
disp=$(token_for "disp-$SFX" dispatcher "$c1")
ana=$(token_for "ana-$SFX" fleet_analyst "$c1")
drv=$(token_for "drv-$SFX" driver "$c1")
fm2=$(token_for "fm2-$SFX" fleet_manager "$c2")
load=load-$SFX

# Creation: dispatchers for their own carrier, admins for any carrier.
fa_api_as "$disp" POST /v1/loads "{\"id\": \"$load\", \"reference\": \"PO 1\"}"
fa_expect_status 201 "dispatcher creates load"
fa_expect_eq "$(body_field .carrier)" "$c1" "carrier of the load"
fa_expect_eq "$(body_field '.drivers | length')" 0 "drivers of a new load"
fa_api_as "$disp" POST /v1/loads "{\"id\": \"$load\"}"
expect_problem 409 conflict "duplicate load"
fa_api_as "$disp" POST /v1/loads "{\"id\": \"x-$SFX\", \"carrier\": \"$c2\"}"
expect_problem 404 not-found "dispatcher creates load for another carrier"
fa_api_as "$drv" POST /v1/loads "{\"id\": \"x-$SFX\"}"
expect_problem 403 forbidden "driver creates load"
fa_api_as "$ana" POST /v1/loads "{\"id\": \"x-$SFX\"}"
expect_problem 403 forbidden "fleet analyst creates load"
fa_api POST /v1/loads "{\"id\": \"x-$SFX\"}"
expect_problem 400 missing-field "admin creates load without carrier"
fa_api POST /v1/loads "{\"id\": \"$load\", \"carrier\": \"$c2\"}"
fa_expect_status 201 "same load id in another carrier"
fa_api POST /v1/loads "{\"id\": \"x-$SFX\", \"carrier\": \"none-$SFX\"}"
expect_problem 404 not-found "load for an unknown carrier"
fa_api POST /v1/loads "{\"id\": \"x+$SFX\", \"carrier\": \"$c1\"}"
expect_problem 400 invalid-field "load id with a plus"

# Assignment: the change is in change_log and announced with NOTIFY.
listen_out=$FA_TMP/listen.out
psql -X -q -c 'LISTEN fleetauth_change' -c 'SELECT pg_sleep(3)' \
	>"$listen_out" 2>&1 &
listener=$!
fa_on_exit "kill $listener 2>/dev/null"
sleep 0.5
before=$(fa_sql "SELECT coalesce(max(id), 0) FROM change_log")
fa_api_as "$disp" PUT "/v1/loads/$load/assignment" \
	"{\"driver\": \"drv-$SFX\"}"
fa_expect_status 200 "dispatcher assigns driver"
fa_expect_eq "$(body_field '.drivers | join(",")')" "drv-$SFX" \
	"drivers after assignment"
row=$(fa_sql "SELECT id || '|' || kind || '|' || carrier_id || '|' ||
	subject FROM change_log WHERE id > $before AND kind = 'assignment'")
fa_expect_contains "$row" "|assignment|$c1|$load" "change_log row"
change_id=${row%%|*}
wait "$listener" || true
fa_expect_contains "$(cat "$listen_out")" \
	"notification \"fleetauth_change\" with payload \"$change_id\"" \
	"NOTIFY seen by a listener"

# Reassignment replaces the driver in one step.
fa_api_as "$disp" PUT "/v1/loads/$load/assignment" \
	"{\"driver\": \"drv2-$SFX\"}"
fa_expect_status 200 "dispatcher reassigns load"
assigned=$(fa_sql "SELECT string_agg(driver_id, ',') FROM load_assignments
	WHERE carrier_id = '$c1' AND load_id = '$load'")
fa_expect_eq "$assigned" "drv2-$SFX" "drivers stored after reassignment"

# Only active drivers of the same carrier can be assigned.
for bad in "other-$SFX" "disp-$SFX" "nobody-$SFX"; do
	fa_api_as "$disp" PUT "/v1/loads/$load/assignment" \
		"{\"driver\": \"$bad\"}"
	expect_problem 400 invalid-field "assign $bad"
done
fa_api PATCH "/v1/users/drv-$SFX" '{"status": "disabled"}'
fa_expect_status 200 "disable driver"
fa_api_as "$disp" PUT "/v1/loads/$load/assignment" "{\"driver\": \"drv-$SFX\"}"
expect_problem 400 invalid-field "assign a disabled driver"
assigned=$(fa_sql "SELECT string_agg(driver_id, ',') FROM load_assignments
	WHERE carrier_id = '$c1' AND load_id = '$load'")
fa_expect_eq "$assigned" "drv2-$SFX" "drivers after rejected assignments"

fa_api_as "$fm2" PUT "/v1/loads/$load/assignment?carrier=$c1" \
	"{\"driver\": \"drv2-$SFX\"}"
expect_problem 404 not-found "fleet manager of another carrier assigns"
fa_api_as "$disp" PUT "/v1/loads/none-$SFX/assignment" \
	"{\"driver\": \"drv2-$SFX\"}"
expect_problem 404 not-found "assign to unknown load"
fa_api_as "$ana" PUT "/v1/loads/$load/assignment" \
	"{\"driver\": \"drv2-$SFX\"}"
expect_problem 403 forbidden "fleet analyst assigns"

# Platform callers name the carrier in the body or the query.
fa_api PUT "/v1/loads/$load/assignment" "{\"driver\": \"other-$SFX\",
	\"carrier\": \"$c2\"}"
fa_expect_status 200 "admin assigns with carrier in the body"
fa_api PUT "/v1/loads/$load/assignment?carrier=$c2" \
	"{\"driver\": \"other-$SFX\"}"
fa_expect_status 200 "admin assigns with carrier in the query"
fa_api PUT "/v1/loads/$load/assignment" "{\"driver\": \"other-$SFX\"}"
expect_problem 400 missing-field "admin assigns without carrier"

# Listing: own carrier only for carrier roles, drivers included.
fa_api_as "$ana" GET /v1/loads
fa_expect_status 200 "fleet analyst lists loads"
fa_expect_eq "$(jq -r '[.items[].carrier] | unique | join(",")' \
	<<<"$FA_BODY")" "$c1" "carriers in the analyst listing"
fa_expect_eq "$(jq -r --arg l "$load" \
	'.items[] | select(.id == $l) | .drivers | join(",")' <<<"$FA_BODY")" \
	"drv2-$SFX" "drivers in the listing"
fa_api_as "$ana" GET "/v1/loads?carrier=$c2"
expect_problem 404 not-found "fleet analyst lists another carrier"
fa_api_as "$drv" GET /v1/loads
expect_problem 401 unauthenticated "disabled driver lists loads"
fa_api GET "/v1/loads?carrier=$c2"
fa_expect_eq "$(jq '.items | length' <<<"$FA_BODY")" 1 "loads of $c2"
fa_api GET "/v1/loads?after=bad"
expect_problem 400 invalid-parameter "malformed cursor"

# Unassignment.
before=$(fa_sql "SELECT coalesce(max(id), 0) FROM change_log")
fa_api_as "$disp" DELETE "/v1/loads/$load/assignment"
fa_expect_status 200 "dispatcher unassigns load"
fa_expect_eq "$(body_field '.drivers | length')" 0 "drivers after unassign"
left=$(fa_sql "SELECT count(*) FROM load_assignments
	WHERE carrier_id = '$c1' AND load_id = '$load'")
fa_expect_eq "$left" 0 "stored assignments after unassign"
changes=$(fa_sql "SELECT count(*) FROM change_log WHERE id > $before
	AND kind = 'assignment' AND subject = '$load' AND carrier_id = '$c1'")
fa_expect_eq "$changes" 1 "change_log rows of the unassignment"

audited=$(fa_sql "SELECT string_agg(action || ':' || outcome, ',' ORDER BY id)
	FROM audit_events WHERE target = '$load' AND action LIKE 'load.%'
	AND actor = 'disp-$SFX'")
fa_expect_eq "$audited" \
	"load.create:success,load.create:failure,load.assign:success,load.assign:success,load.unassign:success" \
	"audit trail of the dispatcher's load changes"
