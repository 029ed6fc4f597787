#!/usr/bin/env bash
# GET /v1/audit: platform roles only, oldest first after a cursor, filters
# by action and actor, pages of at most 500, and the trail is append-only.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
. "$(dirname "$0")/common.sh"

c1=audit-$SFX
create_carrier "$c1"
create_user "ops-$SFX" system_operator
create_user "fm-$SFX" fleet_manager "$c1"
ops=$(token_for "ops-$SFX" system_operator "")
fm=$(token_for "fm-$SFX" fleet_manager "$c1")

# Five events by one actor with a known action.
start=$(fa_sql "SELECT coalesce(max(id), 0) FROM audit_events")
for i in 1 2 3 4 5; do
	fa_api_as "$fm" POST /v1/loads "{\"id\": \"l$i-$SFX\"}"
	fa_expect_status 201 "create load $i"
done

fa_api_as "$fm" GET /v1/audit
expect_problem 403 forbidden "fleet manager reads the audit trail"

fa_api_as "$ops" GET "/v1/audit?after=$start&actor=fm-$SFX&action=load.create&limit=2"
fa_expect_status 200 "operator reads page 1"
fa_expect_eq "$(jq -r '[.items[].target] | join(",")' <<<"$FA_BODY")" \
	"l1-$SFX,l2-$SFX" "targets of page 1"
first=$(jq '.items[0]' <<<"$FA_BODY")
fa_expect_eq "$(jq -r .actor <<<"$first")" "fm-$SFX" "actor"
fa_expect_eq "$(jq -r .outcome <<<"$first")" success "outcome"
fa_expect_eq "$(jq -r .address <<<"$first")" 127.0.0.1 "address"
[[ $(jq -r .request_id <<<"$first") =~ ^[0-9a-f]{32}$ ]] ||
	fa_fail "request_id of an audit event: $(jq -r .request_id <<<"$first")"
next=$(body_field .next)

fa_api_as "$ops" GET "/v1/audit?after=$next&actor=fm-$SFX&action=load.create&limit=2"
fa_expect_eq "$(jq -r '[.items[].target] | join(",")' <<<"$FA_BODY")" \
	"l3-$SFX,l4-$SFX" "targets of page 2"
next=$(body_field .next)
fa_api_as "$ops" GET "/v1/audit?after=$next&actor=fm-$SFX&action=load.create&limit=2"
fa_expect_eq "$(jq -r '[.items[].target] | join(",")' <<<"$FA_BODY")" \
	"l5-$SFX" "targets of the last page"
fa_expect_eq "$(body_field .next)" null "next of the last page"

# Ids grow, and "after" excludes the cursor itself.
fa_api GET "/v1/audit?after=$start&limit=500"
ordered=$(jq '[.items[].id] | . == sort' <<<"$FA_BODY")
fa_expect_eq "$ordered" true "events in ascending id order"
lowest=$(jq '.items[0].id' <<<"$FA_BODY")
((lowest > start)) || fa_fail "event $lowest is not after cursor $start"

# Request ids tie audit events to requests.
raw_api "$FLEETAUTH_ADMIN_KEY" POST /v1/carriers \
	-H 'Content-Type: application/json' -H "X-Request-Id: rq-$SFX" \
	-d "{\"id\": \"rq-$SFX\", \"name\": \"Traced\"}"
fa_expect_status 201 "create carrier with a request id"
traced=$(fa_sql "SELECT action FROM audit_events
	WHERE request_id = 'rq-$SFX'")
fa_expect_eq "$traced" carrier.create "event of the traced request"

for bad in "limit=0" "limit=501" "after=-1" "after=x" "action=LOAD" \
	"actor=a/b"; do
	fa_api GET "/v1/audit?$bad"
	expect_problem 400 invalid-parameter "query $bad"
done

# The trail cannot be rewritten, even by the service's own role.
if fa_sql "UPDATE audit_events SET outcome = 'x' WHERE id = $lowest" \
	2>/dev/null; then
	fa_fail "UPDATE of audit_events succeeded"
fi
if fa_sql "DELETE FROM audit_events WHERE id = $lowest" 2>/dev/null; then
	fa_fail "DELETE from audit_events succeeded"
fi
