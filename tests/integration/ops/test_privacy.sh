#!/usr/bin/env bash
# Privacy requests: GET /v1/users/{id}/export returns the user's profile,
# TOTP state, device keys, loads, refresh families and audit events without
# secrets, for the user, a system_admin and the fleet_manager of the user's
# carrier only. POST /v1/users/{id}/erase (system_admin) removes the personal
# data, cuts off the user's tokens, and leaves the audit rows in place while
# GET /v1/audit and the export show a pseudonym instead of the id.
. "$(dirname "$0")/common.sh"
ops_init "$@"

carrier=$(ops_carrier priv)
other=$(ops_carrier priv-other)
user=$(ops_user drv driver "$carrier")
manager=$(ops_user fm fleet_manager "$carrier")
other_manager=$(ops_user fm-other fleet_manager "$other")
dispatcher=$(ops_user disp dispatcher "$carrier")

# Personal data of the driver: a login (refresh family), TOTP, a device
# key, a load assignment and a bound phone.
token=$(ops_login "$user")
fa_api_as "$token" POST /v1/mfa/totp/enroll
fa_expect_status 200 "TOTP enrollment"
secret=$(jq -r .secret <<<"$FA_BODY")
fa_api_as "$token" POST /v1/mfa/totp/confirm \
	"$(jq -cn --arg c "$(ops_totp "$secret")" '{code: $c}')"
fa_expect_status 200 "TOTP confirmation"
key_id=dk-$OPS_RUN
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	-out "$FA_TMP/dk.key" 2>/dev/null
openssl pkey -in "$FA_TMP/dk.key" -pubout -out "$FA_TMP/dk.pub" 2>/dev/null
# A PEM contains no quote characters, so it can go into the SQL literal.
fa_sql "INSERT INTO device_keys (id, user_id, public_pem)
	VALUES ('$key_id', '$user', '$(cat "$FA_TMP/dk.pub")')" >/dev/null
fa_api POST /v1/devices "$(jq -cn --arg c "$carrier" \
	'{carrier: $c, kind: "phone", label: "phone of the driver"}')"
fa_expect_status 201 "create phone"
phone=$(jq -r .device_id <<<"$FA_BODY")
fa_sql "UPDATE devices SET user_id = '$user' WHERE id = '$phone'" >/dev/null
load=load-$OPS_RUN
fa_api POST /v1/loads "$(jq -cn --arg c "$carrier" --arg l "$load" \
	'{carrier: $c, id: $l, reference: "PO 1"}')"
fa_expect_status 201 "create load"
fa_api PUT "/v1/loads/$load/assignment?carrier=$carrier" \
	"$(jq -cn --arg d "$user" '{driver: $d}')"
fa_expect_status 200 "assign load"

# --- Export by the user themself.
fa_api_as "$token" GET "/v1/users/$user/export"
fa_expect_status 200 "export by the user"
export_json=$FA_BODY
fa_expect_eq "$(jq -r .profile.id <<<"$export_json")" "$user" "profile id"
fa_expect_eq "$(jq -r .profile.carrier <<<"$export_json")" "$carrier" \
	"profile carrier"
fa_expect_eq "$(jq -r .totp.enrolled <<<"$export_json")" true "TOTP state"
fa_expect_eq "$(jq -r '.device_keys[0].id' <<<"$export_json")" "$key_id" \
	"device key id"
fa_expect_contains "$(jq -r '.device_keys[0].public_pem' <<<"$export_json")" \
	"BEGIN PUBLIC KEY" "device public key"
fa_expect_eq "$(jq -r '.devices[0].id' <<<"$export_json")" "$phone" \
	"bound phone"
fa_expect_eq "$(jq -r '.loads[0].load_id' <<<"$export_json")" "$load" \
	"assigned load"
fa_expect_eq "$(jq '.refresh_families | length' <<<"$export_json")" 1 \
	"refresh families"
(($(jq '[.audit_events[] | select(.action == "mfa.totp.confirm")] | length' \
	<<<"$export_json") == 1)) ||
	fa_fail "export lacks the mfa.totp.confirm event: $export_json"
fa_expect_eq "$(jq .audit_truncated <<<"$export_json")" false \
	"audit_truncated"
for secret_field in password_hash secret_enc private_enc token_hash \
	"$secret"; do
	fa_expect_not_contains "$export_json" "$secret_field" \
		"secret in the export"
done

# --- Who may export.
fa_api_as "$(ops_login "$manager")" GET "/v1/users/$user/export"
fa_expect_status 200 "export by the carrier's fleet_manager"
fa_api_as "$(ops_login "$other_manager")" GET "/v1/users/$user/export"
fa_expect_status 404 "export by another carrier's fleet_manager"
fa_api_as "$(ops_login "$dispatcher")" GET "/v1/users/$user/export"
fa_expect_status 403 "export by a dispatcher"
fa_api GET "/v1/users/$user/export"
fa_expect_status 200 "export by a system_admin API key"
fa_api GET /v1/users/no-such-user-priv/export
fa_expect_status 404 "export of an unknown user"

# --- Erasure.
manager_token=$(ops_login "$manager")
fa_api_as "$manager_token" POST "/v1/users/$user/erase"
fa_expect_status 403 "erase by a fleet_manager"
audit_rows_before=$(fa_sql "SELECT count(*) FROM audit_events
	WHERE actor = '$user' OR target = '$user'")
fa_api POST "/v1/users/$user/erase"
fa_expect_status 200 "erase by a system_admin"
pseudonym=$(jq -r .pseudonym <<<"$FA_BODY")
[[ $pseudonym =~ ^erased-[0-9a-f]{16}$ ]] ||
	fa_fail "invalid pseudonym: $FA_BODY"
fa_expect_eq "$(jq .revoked_families <<<"$FA_BODY")" 1 "revoked families"
fa_expect_eq "$(jq .deleted_device_keys <<<"$FA_BODY")" 1 "device keys"
fa_expect_eq "$(jq .deleted_totp <<<"$FA_BODY")" 1 "TOTP"
fa_expect_eq "$(jq .unbound_devices <<<"$FA_BODY")" 1 "unbound phones"
fa_expect_eq "$(jq .deleted_assignments <<<"$FA_BODY")" 1 "assignments"

fa_expect_eq "$(fa_sql "SELECT status || ' ' || password_hash FROM users
	WHERE id = '$user'")" "deleted !erased" "status and password hash"
fa_expect_eq "$(fa_sql "SELECT (SELECT count(*) FROM user_totp
	WHERE user_id = '$user') + (SELECT count(*) FROM device_keys
	WHERE user_id = '$user') + (SELECT count(*) FROM devices
	WHERE user_id = '$user') + (SELECT count(*) FROM load_assignments
	WHERE driver_id = '$user')")" 0 "personal rows left"
fa_expect_eq "$(ops_get_status "$token" /v1/mfa/device-keys)" 401 \
	"token issued before the erasure"
ops_post /v1/auth/login "$(jq -cn --arg u "$user" --arg p "$OPS_PASSWORD" \
	'{username: $u, password: $p}')"
fa_expect_status 401 "login after the erasure"

# The audit rows stay, unchanged, and readers see the pseudonym.
(($(fa_sql "SELECT count(*) FROM audit_events
	WHERE actor = '$user' OR target = '$user'") > audit_rows_before)) ||
	fa_fail "audit rows of the user were removed or the erasure was" \
		"not audited"
fa_api GET "/v1/audit?actor=$user&limit=500"
fa_expect_status 200 "audit by the erased id"
(($(jq '.items | length' <<<"$FA_BODY") > 0)) ||
	fa_fail "audit query by the erased id returned nothing: $FA_BODY"
fa_expect_eq "$(jq -r '[.items[].actor] | unique | join(",")' \
	<<<"$FA_BODY")" "$pseudonym" "actor shown in the audit trail"
fa_expect_not_contains "$FA_BODY" "\"$user\"" "erased id in GET /v1/audit"
fa_api GET "/v1/audit?action=user.erase&limit=500"
fa_expect_status 200 "audit of the erasure"
fa_expect_eq "$(jq -r --arg p "$pseudonym" \
	'[.items[] | select(.target == $p)] | length' <<<"$FA_BODY")" 1 \
	"user.erase event with the pseudonym as target"

fa_api GET "/v1/users/$user/export"
fa_expect_status 200 "export after the erasure"
fa_expect_eq "$(jq -r .profile.pseudonym <<<"$FA_BODY")" "$pseudonym" \
	"pseudonym in the export"
fa_expect_not_contains "$(jq -c .audit_events <<<"$FA_BODY")" "\"$user\"" \
	"erased id in the exported audit events"
fa_expect_eq "$(jq '.device_keys | length' <<<"$FA_BODY")" 0 \
	"device keys after the erasure"

fa_api POST "/v1/users/$user/erase"
fa_expect_status 409 "second erasure"

# The CLI requires --yes before it erases.
if FLEETAUTH_API_KEY=$FLEETAUTH_ADMIN_KEY "$FLEETAUTHCTL" users erase \
	"$dispatcher" >/dev/null 2>"$FA_TMP/ctl.err"; then
	fa_fail "fleetauthctl users erase ran without --yes"
fi
fa_expect_contains "$(cat "$FA_TMP/ctl.err")" "--yes" "CLI error"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM erased_principals
	WHERE id = '$dispatcher'")" 0 "erasure without --yes"
exported=$(FLEETAUTH_API_KEY=$FLEETAUTH_ADMIN_KEY "$FLEETAUTHCTL" \
	users export "$dispatcher") || fa_fail "fleetauthctl users export failed"
fa_expect_eq "$(jq -r .profile.role <<<"$exported")" dispatcher \
	"fleetauthctl users export"

echo "PASS: $(basename "$0")"
