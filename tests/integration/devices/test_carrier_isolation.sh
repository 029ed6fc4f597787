#!/usr/bin/env bash
# Users of one carrier can neither provision, list, read nor revoke the
# devices of another carrier; roles below dispatcher cannot provision.
. "$(dirname "$0")/common.sh"
dev_init "$@"

carrier_a=$(dev_carrier alpha)
carrier_b=$(dev_carrier beta)
disp_a=$(dev_user disp-a dispatcher "$carrier_a")
mgr_a=$(dev_user mgr-a fleet_manager "$carrier_a")
disp_b=$(dev_user disp-b dispatcher "$carrier_b")
driver_a=$(dev_user drv-a driver "$carrier_a")
analyst_a=$(dev_user ana-a fleet_analyst "$carrier_a")
token_a=$(dev_token "$disp_a" dispatcher "$carrier_a")
mgr_token_a=$(dev_token "$mgr_a" fleet_manager "$carrier_a")
token_b=$(dev_token "$disp_b" dispatcher "$carrier_b")
driver_token=$(dev_token "$driver_a" driver "$carrier_a")
analyst_token=$(dev_token "$analyst_a" fleet_analyst "$carrier_a")

dev_provision "$token_b" "$carrier_b"
device_b=$DEV_ID
dev_provision "$token_a" "$carrier_a"
device_a=$DEV_ID

# Provisioning for another carrier is refused and creates nothing.
before=$(fa_sql "SELECT count(*) FROM devices WHERE carrier_id = '$carrier_b'")
fa_api_as "$token_a" POST /v1/devices "$(jq -cn --arg c "$carrier_b" \
	'{carrier: $c, kind: "truck"}')"
fa_expect_status 404 "provisioning for another carrier"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM devices
	WHERE carrier_id = '$carrier_b'")" "$before" "devices of carrier B"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM audit_events
	WHERE actor = '$disp_a' AND outcome = 'denied'")" 1 \
	"audit of the denied provisioning"

# Omitting the carrier uses the caller's own.
fa_api_as "$token_a" POST /v1/devices '{"kind": "phone"}'
fa_expect_status 201 "provisioning without carrier"
fa_expect_eq "$(jq -r .carrier <<<"$FA_BODY")" "$carrier_a" "default carrier"
[[ $(jq -r .device_id <<<"$FA_BODY") == phn-* ]] ||
	fa_fail "a phone's id does not start with phn-"

# Drivers and analysts cannot provision.
fa_api_as "$driver_token" POST /v1/devices '{"kind": "truck"}'
fa_expect_status 403 "provisioning by a driver"
fa_api_as "$analyst_token" POST /v1/devices '{"kind": "truck"}'
fa_expect_status 403 "provisioning by a fleet analyst"

# Reading another carrier's device looks like it does not exist.
fa_api_as "$token_a" GET "/v1/devices/$device_b"
fa_expect_status 404 "GET of another carrier's device"
fa_api_as "$token_a" GET "/v1/devices/trk-doesnotexist"
fa_expect_status 404 "GET of an unknown device"
fa_api_as "$analyst_token" GET "/v1/devices/$device_a"
fa_expect_status 200 "GET by a fleet analyst of the carrier"
fa_api_as "$driver_token" GET "/v1/devices/$device_a"
fa_expect_status 403 "GET by a driver"

# Listing shows only the caller's carrier, and naming another is refused.
fa_api_as "$token_a" GET /v1/devices
fa_expect_status 200 "list of own devices"
fa_expect_eq "$(jq -r '[.items[].carrier] | unique | join(",")' \
	<<<"$FA_BODY")" "$carrier_a" "carriers in the list"
fa_expect_eq "$(jq -r --arg d "$device_b" \
	'[.items[] | select(.device_id == $d)] | length' <<<"$FA_BODY")" 0 \
	"device of carrier B in the list"
fa_api_as "$token_a" GET "/v1/devices?carrier=$carrier_b"
fa_expect_status 404 "list of another carrier's devices"
fa_api_as "$token_a" GET "/v1/devices?status=bogus"
fa_expect_status 400 "list with an unknown status"
fa_api_as "$token_a" GET "/v1/devices?status=pending&limit=1"
fa_expect_status 200 "paged list"
fa_expect_eq "$(jq -r '.items | length' <<<"$FA_BODY")" 1 "page size"
next=$(jq -r .next <<<"$FA_BODY")
fa_api_as "$token_a" GET "/v1/devices?status=pending&limit=1&after=$next"
fa_expect_status 200 "second page"
fa_expect_ne "$(jq -r '.items[0].device_id' <<<"$FA_BODY")" "$next" \
	"second page starts after the first"

# The platform administrator can read both carriers.
fa_api GET "/v1/devices?carrier=$carrier_b"
fa_expect_status 200 "admin list of carrier B"
fa_expect_eq "$(jq -r '.items[0].device_id' <<<"$FA_BODY")" "$device_b" \
	"admin sees carrier B's device"

# Revocation of another carrier's device is refused and changes nothing.
fa_api_as "$mgr_token_a" POST "/v1/devices/$device_b/revoke" \
	'{"reason": "lost"}'
fa_expect_status 404 "revocation of another carrier's device"
fa_expect_eq "$(fa_sql "SELECT status FROM devices WHERE id = '$device_b'")" \
	pending "status of carrier B's device"
fa_api_as "$token_a" POST "/v1/devices/$device_b/enrollment-code"
fa_expect_status 404 "new code for another carrier's device"
