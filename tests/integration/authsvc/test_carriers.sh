#!/usr/bin/env bash
# Carriers: only system administrators create and list them. Ids, names
# and time zones are validated, and a carrier user reads only their own.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
. "$(dirname "$0")/common.sh"

c1=north-$SFX
fa_api POST /v1/carriers "{\"id\": \"$c1\", \"name\": \"North Haulage\",
	\"time_zone\": \"America/Chicago\"}"
fa_expect_status 201 "create carrier"
fa_expect_eq "$(body_field .id)" "$c1" "id of the new carrier"
fa_expect_eq "$(body_field .time_zone)" America/Chicago "time zone"
stored=$(fa_sql "SELECT name || '|' || time_zone FROM carriers
	WHERE id = '$c1'")
fa_expect_eq "$stored" "North Haulage|America/Chicago" "stored carrier"
audited=$(fa_sql "SELECT count(*) FROM audit_events
	WHERE action = 'carrier.create' AND target = '$c1'
	AND outcome = 'success'")
fa_expect_eq "$audited" 1 "audit events of the creation"

fa_api POST /v1/carriers "{\"id\": \"south-$SFX\", \"name\": \"South\"}"
fa_expect_status 201 "create carrier without time zone"
fa_expect_eq "$(body_field .time_zone)" UTC "default time zone"

fa_api POST /v1/carriers "{\"id\": \"$c1\", \"name\": \"Again\"}"
expect_problem 409 conflict "duplicate carrier"

fa_api POST /v1/carriers "{\"id\": \"x-$SFX\", \"name\": \"X\",
	\"time_zone\": \"Mars/Olympus\"}"
expect_problem 400 invalid-field "unknown time zone"
fa_api POST /v1/carriers "{\"id\": \"x-$SFX\", \"name\": \"X\",
	\"time_zone\": \"Europe/Berlin'; --\"}"
expect_problem 400 invalid-field "time zone with SQL text"
fa_api POST /v1/carriers '{"id": "a/b", "name": "X"}'
expect_problem 400 invalid-field "carrier id with a slash"
fa_api POST /v1/carriers "{\"id\": \"x-$SFX\", \"name\": \"\"}"
expect_problem 400 invalid-field "empty name"
fa_api POST /v1/carriers "{\"id\": \"x-$SFX\",
	\"name\": \"$(printf 'n%.0s' {1..201})\"}"
expect_problem 400 invalid-field "name of 201 characters"
fa_api POST /v1/carriers "{\"id\": \"x-$SFX\", \"name\": \"line\\nbreak\"}"
expect_problem 400 invalid-field "name with a control character"
gone=$(fa_sql "SELECT count(*) FROM carriers WHERE id = 'x-$SFX'")
fa_expect_eq "$gone" 0 "carriers created by rejected requests"

# Carrier users neither create nor list carriers, and see only their own.
create_user "fm-$SFX" fleet_manager "$c1"
fm=$(token_for "fm-$SFX" fleet_manager "$c1")
fa_api_as "$fm" POST /v1/carriers "{\"id\": \"y-$SFX\", \"name\": \"Y\"}"
expect_problem 403 forbidden "fleet manager creates carrier"
fa_api_as "$fm" GET /v1/carriers
expect_problem 403 forbidden "fleet manager lists carriers"
fa_api_as "$fm" GET "/v1/carriers/$c1"
fa_expect_status 200 "fleet manager reads own carrier"
fa_api_as "$fm" GET "/v1/carriers/south-$SFX"
expect_problem 404 not-found "fleet manager reads another carrier"
fa_api GET "/v1/carriers/none-$SFX"
expect_problem 404 not-found "unknown carrier"

# Listing with paging.
fa_api GET "/v1/carriers?limit=500"
fa_expect_status 200 "list carriers"
found=$(jq --arg id "$c1" '[.items[] | select(.id == $id)] | length' \
	<<<"$FA_BODY")
fa_expect_eq "$found" 1 "new carrier in the listing"
fa_api GET "/v1/carriers?limit=1"
fa_expect_eq "$(jq '.items | length' <<<"$FA_BODY")" 1 "page of one"
next=$(body_field .next)
fa_api GET "/v1/carriers?limit=1&after=$next"
second=$(jq -r '.items[0].id' <<<"$FA_BODY")
[[ $second > $next ]] || fa_fail "page after $next starts at $second"
fa_api GET "/v1/carriers?after=a%2Fb"
expect_problem 400 invalid-parameter "cursor with a slash"
