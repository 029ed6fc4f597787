#!/usr/bin/env bash
# API keys: created once with scopes and expiry, stored hashed, listed
# without secrets, limited to their scopes and carrier, refused after
# expiry or revocation.
. "$(dirname "$0")/common.sh"
dev_init "$@"

carrier=$(dev_carrier apikeys)
other_carrier=$(dev_carrier apikeys-other)
manager=$(dev_user mgr fleet_manager "$carrier")
other_manager=$(dev_user mgr-other fleet_manager "$other_carrier")
dispatcher=$(dev_user disp dispatcher "$carrier")
manager_token=$(dev_token "$manager" fleet_manager "$carrier")
other_token=$(dev_token "$other_manager" fleet_manager "$other_carrier")
disp_token=$(dev_token "$dispatcher" dispatcher "$carrier")

create()
{
	fa_api_as "$1" POST /v1/api-keys "$2"
}

# A read-only key made by the administrator.
create "$FLEETAUTH_ADMIN_KEY" '{"name": "reader", "scopes": ["devices:read"]}'
fa_expect_status 201 "creation by the administrator"
reader_id=$(jq -r .id <<<"$FA_BODY")
reader=$(jq -r .key <<<"$FA_BODY")
[[ $reader =~ ^fak_[A-Za-z0-9_-]{43}$ ]] ||
	fa_fail "key is not fak_ and 43 base64url characters"
fa_expect_eq "$(jq -r .key_prefix <<<"$FA_BODY")" "${reader:0:12}" "key prefix"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM api_keys WHERE id = '$reader_id'
	AND key_hash = sha256(convert_to('$reader', 'UTF8'))
	AND expires_at BETWEEN now() + interval '89 days'
	AND now() + interval '91 days'")" 1 "stored hash and default expiry"

# Its scope allows reading devices and nothing else.
fa_api_as "$reader" GET "/v1/devices?carrier=$carrier"
fa_expect_status 200 "read with devices:read"
fa_api_as "$reader" POST /v1/devices "$(jq -cn --arg c "$carrier" \
	'{carrier: $c, kind: "truck"}')"
fa_expect_status 403 "provisioning without devices:write"
fa_api_as "$reader" GET /v1/api-keys
fa_expect_status 403 "listing keys without keys:admin"

# The listing shows the prefix and never the secret.
fa_api GET /v1/api-keys
fa_expect_status 200 "listing by the administrator"
fa_expect_not_contains "$FA_BODY" "${reader:12}" "secret in the listing"
fa_expect_eq "$(jq -r --arg id "$reader_id" \
	'.items[] | select(.id == $id) | .key_prefix + " " + .status' \
	<<<"$FA_BODY")" "${reader:0:12} active" "listed key"

# Expiry (backdated in SQL) ends it.
fa_sql "UPDATE api_keys SET expires_at = now() - interval '1 second'
	WHERE id = '$reader_id'"
fa_api_as "$reader" GET "/v1/devices?carrier=$carrier"
fa_expect_status 401 "expired key"

# Fleet managers make keys for their own carrier only, without admin scopes.
create "$disp_token" '{"name": "x", "scopes": ["devices:read"]}'
fa_expect_status 403 "creation by a dispatcher"
create "$manager_token" '{"name": "x", "scopes": ["*"]}'
fa_expect_status 403 "fleet manager granting *"
create "$manager_token" '{"name": "x", "scopes": ["keys:admin"]}'
fa_expect_status 403 "fleet manager granting keys:admin"
fa_expect_eq "$(fa_sql "SELECT detail->>'reason' FROM audit_events
	WHERE action = 'api_key.create' AND actor = '$manager'
	AND outcome = 'denied' ORDER BY id DESC LIMIT 1")" "admin-only scope" \
	"audit of the refused scope"
create "$manager_token" '{"name": "x", "scopes": ["devices:fly"]}'
fa_expect_status 400 "unknown scope"
create "$manager_token" '{"name": "x", "scopes": []}'
fa_expect_status 400 "no scopes"
create "$manager_token" \
	'{"name": "x", "scopes": ["devices:read", "devices:read"]}'
fa_expect_status 400 "duplicate scope"
create "$manager_token" \
	'{"name": "x", "scopes": ["devices:read"], "expires_in": 31536001}'
fa_expect_status 400 "expiry beyond one year"
create "$manager_token" "$(jq -cn --arg c "$other_carrier" \
	'{name: "x", scopes: ["devices:read"], carrier: $c}')"
fa_expect_status 404 "key for another carrier"
create "$manager_token" \
	'{"name": "x", "scopes": ["devices:read"], "role": "system_admin"}'
fa_expect_status 403 "key with a role above the caller's"
create "$manager_token" '{"name": "x", "scopes": ["devices:read"], "k": 1}'
fa_expect_status 400 "unknown field"

create "$manager_token" '{"name": "provisioner",
	"scopes": ["devices:read", "devices:write"], "expires_in": 3600}'
fa_expect_status 201 "creation by a fleet manager"
writer_id=$(jq -r .id <<<"$FA_BODY")
writer=$(jq -r .key <<<"$FA_BODY")
fa_expect_eq "$(jq -r '.role + " " + .carrier' <<<"$FA_BODY")" \
	"fleet_manager $carrier" "role and carrier of the key"
fa_expect_eq "$(dev_audit api_key.create "$writer_id")" "success|" \
	"audit of the creation"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM audit_events
	WHERE target = '$writer_id' AND detail::text LIKE '%${writer:4}%'")" 0 \
	"secret in the audit trail"

# The key acts for its carrier only.
fa_api_as "$writer" POST /v1/devices '{"kind": "truck"}'
fa_expect_status 201 "provisioning with the key"
fa_expect_eq "$(jq -r .carrier <<<"$FA_BODY")" "$carrier" "carrier of the device"
fa_api_as "$writer" POST /v1/devices "$(jq -cn --arg c "$other_carrier" \
	'{carrier: $c, kind: "truck"}')"
fa_expect_status 404 "provisioning for another carrier with the key"

# The manager lists only the carrier's keys.
fa_api_as "$manager_token" GET /v1/api-keys
fa_expect_status 200 "listing by a fleet manager"
fa_expect_eq "$(jq -r '[.items[].carrier] | unique | join(",")' \
	<<<"$FA_BODY")" "$carrier" "carriers in the manager's listing"

# Revocation: not by another carrier's manager; then the key stops working.
fa_api_as "$other_token" DELETE "/v1/api-keys/$writer_id"
fa_expect_status 404 "revocation by another carrier's manager"
fa_api_as "$manager_token" DELETE "/v1/api-keys/$writer_id"
fa_expect_status 200 "revocation"
fa_api_as "$writer" GET /v1/devices
fa_expect_status 401 "revoked key"
fa_api_as "$manager_token" DELETE "/v1/api-keys/$writer_id"
fa_expect_status 409 "second revocation"
fa_api_as "$manager_token" DELETE "/v1/api-keys/ak-unknown"
fa_expect_status 404 "revocation of an unknown key"
