#!/usr/bin/env bash
# Refresh tokens: rotation, reuse detection (the whole family is revoked),
# 32 concurrent refreshes of one token, logout, and refusal for inactive
# users, expired families and users outside their access window.
. "$(dirname "$0")/common.sh"
auth_init "$@"

carrier=$(auth_carrier refresh)
user=$(auth_user drv driver "$carrier")

refresh()
{
	auth_post /v1/auth/refresh "$(jq -cn --arg t "$1" '{refresh_token: $t}')"
}

# --- Rotation: every use returns a new pair, and the old token is spent.
auth_login "$user" "$AUTH_PASSWORD" 200
first=$(auth_field refresh_token)
family=$(auth_jwt_part "$(auth_field access_token)" 1 | jq -r .fam)
refresh "$first"
fa_expect_status 200 "first refresh"
second=$(auth_field refresh_token)
access=$(auth_field access_token)
fa_expect_ne "$second" "$first" "rotated refresh token"
fa_expect_eq "$(auth_jwt_part "$access" 1 | jq -r .fam)" "$family" \
	"family of the refreshed access token"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM refresh_tokens WHERE
	family_id = '$family' AND rotated_at IS NOT NULL")" 1 "rotated rows"
# Only the hash is stored.
fa_expect_eq "$(fa_sql "SELECT count(*) FROM refresh_tokens WHERE
	token_hash = sha256(convert_to('$second', 'UTF8'))")" 1 \
	"stored hash of the new token"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM refresh_tokens WHERE
	encode(token_hash, 'escape') LIKE '%frt_%'")" 0 "token text in the table"
# Tokens expire with their family, refresh_token_days (30) after login.
fa_expect_eq "$(fa_sql "SELECT bool_and(t.expires_at = f.expires_at) AND
	bool_and(f.expires_at BETWEEN now() + interval '29 days 23 hours'
	AND now() + interval '30 days') FROM refresh_tokens t
	JOIN refresh_families f ON f.id = t.family_id
	WHERE f.id = '$family'")" t "token and family expiry"

# --- Reuse: presenting the spent token revokes the family, so the newer
# token and the family's access tokens stop working too.
fa_expect_eq "$(auth_get_status "$access" /v1/mfa/device-keys)" 200 \
	"access token before the reuse"
refresh "$first"
fa_expect_status 401 "reused refresh token"
fa_expect_contains "$FA_BODY" "already used" "reuse message"
fa_expect_eq "$(fa_sql "SELECT revoke_reason FROM refresh_families
	WHERE id = '$family' AND revoked_at IS NOT NULL")" reuse \
	"family revoked for reuse"
fa_expect_eq "$(auth_audit_count refresh.reuse_detected "$user" denied)" 1 \
	"audit of the reuse"
refresh "$second"
fa_expect_status 401 "newer token of the revoked family"
fa_expect_eq "$(auth_get_status "$access" /v1/mfa/device-keys)" 401 \
	"access token of the revoked family"

# --- 32 concurrent refreshes of one token: exactly one gets a new pair.
auth_login "$user" "$AUTH_PASSWORD" 200
token=$(auth_field refresh_token)
family=$(auth_jwt_part "$(auth_field access_token)" 1 | jq -r .fam)
body=$(jq -cn --arg t "$token" '{refresh_token: $t}')
seq 1 32 | xargs -P 32 -I{} curl -s -o "$FA_TMP/concurrent-{}.json" \
	-w '%{http_code}\n' --max-time "$FA_CLIENT_TIMEOUT" \
	--interface "$AUTH_ADDRESS" -X POST \
	-H 'Content-Type: application/json' --data-binary "$body" \
	"$FLEETAUTH_URL/v1/auth/refresh" >"$FA_TMP/statuses"
fa_expect_eq "$(wc -l <"$FA_TMP/statuses")" 32 "responses"
fa_expect_eq "$(grep -c '^200$' "$FA_TMP/statuses")" 1 \
	"successful concurrent refreshes"
fa_expect_eq "$(grep -c '^401$' "$FA_TMP/statuses")" 31 \
	"rejected concurrent refreshes"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM refresh_tokens WHERE
	family_id = '$family'")" 2 "tokens of the family (old and one new)"
# The 31 losers presented a rotated token, so the family is revoked.
fa_expect_eq "$(fa_sql "SELECT revoke_reason FROM refresh_families
	WHERE id = '$family'")" reuse "family after concurrent reuse"

# --- Logout revokes the family; its tokens stop working.
auth_login "$user" "$AUTH_PASSWORD" 200
token=$(auth_field refresh_token)
access=$(auth_field access_token)
family=$(auth_jwt_part "$access" 1 | jq -r .fam)
auth_post /v1/auth/logout "$(jq -cn --arg t "$token" '{refresh_token: $t}')"
fa_expect_status 200 "logout"
fa_expect_eq "$(fa_sql "SELECT revoke_reason FROM refresh_families
	WHERE id = '$family'")" logout "family revoked by logout"
refresh "$token"
fa_expect_status 401 "refresh after logout"
fa_expect_eq "$(auth_get_status "$access" /v1/mfa/device-keys)" 401 \
	"access token after logout"
unknown=frt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
auth_post /v1/auth/logout "{\"refresh_token\": \"$unknown\"}"
fa_expect_status 401 "logout with an unknown token"

# --- Malformed and unknown tokens.
refresh "frt_short"
fa_expect_status 401 "malformed refresh token"
refresh "$unknown"
fa_expect_status 401 "unknown refresh token"
auth_post /v1/auth/refresh '{"refresh_token": 7}'
fa_expect_status 400 "numeric refresh token"
auth_post /v1/auth/refresh '{}'
fa_expect_status 400 "missing refresh token"

# --- Expired family, inactive user, access window.
auth_login "$user" "$AUTH_PASSWORD" 200
token=$(auth_field refresh_token)
family=$(auth_jwt_part "$(auth_field access_token)" 1 | jq -r .fam)
fa_sql "UPDATE refresh_families SET expires_at = now() - interval '1 second'
	WHERE id = '$family'"
refresh "$token"
fa_expect_status 401 "refresh of an expired family"

auth_login "$user" "$AUTH_PASSWORD" 200
token=$(auth_field refresh_token)
fa_sql "UPDATE users SET
	window_start = (now() AT TIME ZONE 'UTC' + interval '2 hours')::time,
	window_end = (now() AT TIME ZONE 'UTC' + interval '3 hours')::time
	WHERE id = '$user'"
refresh "$token"
fa_expect_status 403 "refresh outside the access window"
fa_sql "UPDATE users SET window_start = NULL, window_end = NULL
	WHERE id = '$user'"
refresh "$token"
fa_expect_status 200 "refresh back inside the window"
token=$(auth_field refresh_token)
fa_sql "UPDATE users SET status = 'disabled' WHERE id = '$user'"
refresh "$token"
fa_expect_status 401 "refresh of a disabled user"
echo "PASS: $(basename "$0")"
