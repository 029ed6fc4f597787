#!/usr/bin/env bash
# Biometric device keys. Registration needs a TOTP login and a P-256 key.
# A signed single-use nonce logs the user in with amr hwk and bio. Replayed,
# foreign, expired and wrongly signed nonces fail, and so do revoked keys
# and keys of revoked devices.
. "$(dirname "$0")/common.sh"
dev_init "$@"
# Failed device-key logins count against 127.0.0.1 like failed passwords;
# do not leave them to throttle later tests.
fa_on_exit "fa_sql \"DELETE FROM login_failures WHERE key IN ('127.0.0.1')\""

carrier=$(dev_carrier keys)
dispatcher=$(dev_user disp dispatcher "$carrier")
manager=$(dev_user mgr fleet_manager "$carrier")
driver=$(dev_user drv driver "$carrier")
disp_token=$(dev_token "$dispatcher" dispatcher "$carrier")
manager_token=$(dev_token "$manager" fleet_manager "$carrier")
pwd_token=$(dev_token "$driver" driver "$carrier")
otp_token=$(dev_token "$driver" driver "$carrier" '{"amr": ["pwd", "otp"]}')
dev_provision "$disp_token" "$carrier" phone
phone=$DEV_ID

make_key()
{
	openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:$2" \
		-out "$FA_TMP/$1.key" 2>/dev/null
	openssl pkey -in "$FA_TMP/$1.key" -pubout -out "$FA_TMP/$1.pub"
}

register()
{
	local token=$1 name=$2 device=${3:-}
	fa_api_as "$token" POST /v1/mfa/device-keys "$(jq -cn \
		--rawfile k "$FA_TMP/$name.pub" --arg d "$device" \
		'{public_key: $k} + (if $d == "" then {} else {device_id: $d} end)')"
}

challenge()
{
	fa_api_as "" POST /v1/auth/device-key/challenge \
		"$(jq -cn --arg k "$1" '{key_id: $k}')"
}

# Signs text with key name and sends the verification for key_id.
verify()
{
	local key_id=$1 nonce=$2 name=$3 text=${4:-$2} signature
	signature=$(printf '%s' "$text" |
		openssl dgst -sha256 -sign "$FA_TMP/$name.key" | openssl base64 -A)
	fa_api_as "" POST /v1/auth/device-key/verify "$(jq -cn --arg k "$key_id" \
		--arg n "$nonce" --arg s "$signature" \
		'{key_id: $k, nonce: $n, signature: $s}')"
}

last_denial()
{
	fa_sql "SELECT detail->>'reason' FROM audit_events
		WHERE action = 'auth.device_key' AND outcome = 'denied'
		AND detail->>'key_id' = '$1' ORDER BY id DESC LIMIT 1"
}

make_key phone-key P-256
make_key p384 P-384
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
	-out "$FA_TMP/rsa.key" 2>/dev/null
openssl pkey -in "$FA_TMP/rsa.key" -pubout -out "$FA_TMP/rsa.pub"

# Registration needs a login that included TOTP, and a P-256 key.
register "$pwd_token" phone-key "$phone"
fa_expect_status 403 "registration after a password-only login"
register "$otp_token" p384 "$phone"
fa_expect_status 400 "registration of a P-384 key"
register "$otp_token" rsa "$phone"
fa_expect_status 400 "registration of an RSA key"
register "$otp_token" phone-key "phn-unknown"
fa_expect_status 404 "registration for an unknown device"
register "$otp_token" phone-key "$phone"
fa_expect_status 201 "registration"
key_id=$(jq -r .key_id <<<"$FA_BODY")
fa_expect_eq "$(jq -r .device_id <<<"$FA_BODY")" "$phone" "bound device"
fa_expect_eq "$(dev_audit device_key.register "$key_id")" "success|" \
	"audit of the registration"

# A nonce signed with the key logs the driver in.
challenge "$key_id"
fa_expect_status 200 "challenge"
nonce=$(jq -r .nonce <<<"$FA_BODY")
[[ $nonce =~ ^[A-Za-z0-9_-]{43}$ ]] ||
	fa_fail "nonce '$nonce' is not 43 base64url characters"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM device_key_nonces
	WHERE key_id = '$key_id' AND nonce_hash = sha256(convert_to('$nonce',
	'UTF8')) AND expires_at <= now() + interval '60 seconds'")" 1 \
	"stored nonce hash and expiry"
verify "$key_id" "$nonce" phone-key
fa_expect_status 200 "verification"
access=$(jq -r .access_token <<<"$FA_BODY")
refresh=$(jq -r .refresh_token <<<"$FA_BODY")
[[ $refresh == frt_* ]] || fa_fail "refresh token does not start with frt_"
claims=$(dev_jwt_claims "$access")
fa_expect_eq "$(jq -c .amr <<<"$claims")" '["hwk","bio"]' "amr claim"
fa_expect_eq "$(jq -r .sub <<<"$claims")" "$driver" "sub claim"
fa_expect_eq "$(jq -r .did <<<"$claims")" "$phone" "did claim"
family=$(jq -r .fam <<<"$claims")
fa_expect_eq "$(fa_sql "SELECT device_id || ' ' || array_to_string(amr, ',')
	FROM refresh_families WHERE id = '$family'")" "$phone hwk,bio" \
	"refresh family"
fa_api_as "$access" GET /v1/mfa/device-keys
fa_expect_status 200 "request with the issued access token"
fa_expect_eq "$(jq -r '.items[0].key_id' <<<"$FA_BODY")" "$key_id" \
	"listed key"

# The same nonce and signature again: refused.
verify "$key_id" "$nonce" phone-key
fa_expect_status 401 "replayed nonce"
fa_expect_eq "$(last_denial "$key_id")" "nonce already used" "replay reason"

# A signature over other bytes fails, and spends the nonce.
challenge "$key_id"
nonce=$(jq -r .nonce <<<"$FA_BODY")
verify "$key_id" "$nonce" phone-key "not-the-nonce"
fa_expect_status 401 "signature over the wrong nonce"
fa_expect_eq "$(last_denial "$key_id")" "bad signature" "wrong-nonce reason"
verify "$key_id" "$nonce" phone-key
fa_expect_status 401 "nonce after a failed attempt"

# A signature by another key fails.
make_key stranger P-256
challenge "$key_id"
nonce=$(jq -r .nonce <<<"$FA_BODY")
verify "$key_id" "$nonce" stranger
fa_expect_status 401 "signature by another key"

# A nonce of one key does not work for another key of the same user.
make_key second P-256
register "$otp_token" second
fa_expect_status 201 "registration of a second key"
second_id=$(jq -r .key_id <<<"$FA_BODY")
challenge "$key_id"
nonce=$(jq -r .nonce <<<"$FA_BODY")
verify "$second_id" "$nonce" second
fa_expect_status 401 "nonce of another key"
fa_expect_eq "$(last_denial "$second_id")" "unknown nonce" \
	"reason for another key's nonce"

# An expired nonce fails.
challenge "$key_id"
nonce=$(jq -r .nonce <<<"$FA_BODY")
fa_sql "UPDATE device_key_nonces SET expires_at = now() - interval '1 second'
	WHERE nonce_hash = sha256(convert_to('$nonce', 'UTF8'))"
verify "$key_id" "$nonce" phone-key
fa_expect_status 401 "expired nonce"
fa_expect_eq "$(last_denial "$key_id")" "nonce expired" "expiry reason"

# At most 5 open challenges per key: the sixth is refused with 429 and
# audited; answering one makes room for the next.
fa_sql "UPDATE device_key_nonces SET expires_at = now() - interval '1 s'
	WHERE key_id = '$key_id' AND used_at IS NULL" >/dev/null
for n in 1 2 3 4 5; do
	challenge "$key_id"
	fa_expect_status 200 "open challenge $n of key $key_id"
done
open_nonce=$(jq -r .nonce <<<"$FA_BODY")
challenge "$key_id"
fa_expect_status 429 "sixth open challenge"
fa_expect_contains "$FA_BODY" "5 open challenges" "message of the 429"
fa_expect_eq "$(fa_sql "SELECT detail->>'reason' FROM audit_events
	WHERE action = 'device_key.challenge' AND target = '$key_id'
	AND outcome = 'denied' ORDER BY id DESC LIMIT 1")" \
	too_many_open_challenges "audit of the refused challenge"
verify "$key_id" "$open_nonce" phone-key
fa_expect_status 200 "verification with one of the open challenges"
challenge "$key_id"
fa_expect_status 200 "challenge after one was answered"

# A revoked key: no new nonce, and an outstanding nonce fails.
challenge "$second_id"
nonce=$(jq -r .nonce <<<"$FA_BODY")
fa_api_as "$pwd_token" DELETE "/v1/mfa/device-keys/$second_id"
fa_expect_status 200 "revocation of a key by its owner"
fa_api_as "$pwd_token" DELETE "/v1/mfa/device-keys/$second_id"
fa_expect_status 409 "second revocation of a key"
challenge "$second_id"
fa_expect_status 403 "challenge for a revoked key"
verify "$second_id" "$nonce" second
fa_expect_status 401 "verification with a revoked key"
fa_expect_eq "$(last_denial "$second_id")" "key revoked" "revoked-key reason"

# Revoking the phone revokes its keys and the families bound to it.
fa_api_as "$manager_token" POST "/v1/devices/$phone/revoke" \
	'{"reason": "lost"}'
fa_expect_status 200 "revocation of the phone"
fa_expect_eq "$(jq -r .device_keys_revoked <<<"$FA_BODY")" 1 \
	"device keys revoked with the phone"
(($(jq -r .families_revoked <<<"$FA_BODY") >= 1)) ||
	fa_fail "no refresh family was revoked with the phone"
fa_expect_ne "$(fa_sql "SELECT revoked_at FROM refresh_families
	WHERE id = '$family'")" "" "family of the device-key login"
fa_api_as "$access" GET /v1/mfa/device-keys
fa_expect_status 401 "access token of the revoked phone"
challenge "$key_id"
fa_expect_status 403 "challenge for a key of a revoked phone"
