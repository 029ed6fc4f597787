#!/usr/bin/env bash
# Enrollment rejects a reused or expired code and the code of a revoked
# device. It rejects malformed CSRs, weak or unsupported keys, a CSR whose
# signature does not match, and CSRs that request CA rights or unknown
# extensions. Repeated failures from one address are throttled.
. "$(dirname "$0")/common.sh"
dev_init "$@"

carrier=$(dev_carrier rejects)
dispatcher=$(dev_user disp dispatcher "$carrier")
manager=$(dev_user mgr fleet_manager "$carrier")
token=$(dev_token "$dispatcher" dispatcher "$carrier")
manager_token=$(dev_token "$manager" fleet_manager "$carrier")

# Expects a 400 naming reason for CSR file csr with a fresh valid code.
expect_csr_rejected()
{
	local csr=$1 needle=$2 what=$3
	dev_enroll_request "$DEV_CODE" "$csr"
	fa_expect_status 400 "$what"
	fa_expect_contains "$(jq -r .detail <<<"$FA_BODY")" "$needle" "$what"
	fa_expect_eq "$(jq -r .type <<<"$FA_BODY")" \
		"https://fleetauth.dev/problems/invalid-field" "$what type"
}

dev_provision "$token" "$carrier"
device=$DEV_ID

# Malformed CSRs: not PEM, PEM of the wrong type, garbage inside.
printf 'not a csr\n' >"$FA_TMP/garbage.csr"
expect_csr_rejected "$FA_TMP/garbage.csr" "PEM" "CSR that is not PEM"
dev_csr other
openssl pkey -in "$FA_TMP/other.key" -pubout >"$FA_TMP/pubkey.csr"
expect_csr_rejected "$FA_TMP/pubkey.csr" "CERTIFICATE REQUEST" \
	"public key instead of a CSR"
printf -- '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' \
	>"$FA_TMP/empty.csr"
expect_csr_rejected "$FA_TMP/empty.csr" "PKCS#10" "CSR with garbage DER"

# RSA 1024 is too short, and the message names the accepted keys.
DEV_KEY_ALG="RSA -pkeyopt rsa_keygen_bits:1024" dev_csr rsa1024
expect_csr_rejected "$FA_TMP/rsa1024.csr" "1024 bits is too short" \
	"CSR with RSA 1024"
# P-384 is not accepted either.
DEV_KEY_ALG="EC -pkeyopt ec_paramgen_curve:P-384" dev_csr p384
expect_csr_rejected "$FA_TMP/p384.csr" "secp384r1" "CSR with P-384"

# A CSR whose signature does not match its content: flip one byte of the
# subject and re-encode.
dev_csr tampered -subj "/CN=tamperAAAA"
openssl req -in "$FA_TMP/tampered.csr" -outform DER -out "$FA_TMP/t.der"
perl -pi -e 's/tamperAAAA/tamperBBBB/' "$FA_TMP/t.der"
openssl req -inform DER -in "$FA_TMP/t.der" -out "$FA_TMP/t.csr" 2>/dev/null ||
	fa_fail "openssl could not re-encode the tampered CSR"
# openssl req -verify exits 0 either way in OpenSSL 3.0, so read its output.
openssl req -in "$FA_TMP/t.csr" -noout -verify 2>&1 | grep -q "verify OK" &&
	fa_fail "the tampered CSR still verifies; the test is broken"
expect_csr_rejected "$FA_TMP/t.csr" "signature does not verify" \
	"CSR with a bad signature"

# Extensions: CA:TRUE and unknown ones are rejected, allowed ones ignored.
dev_csr ca -addext "basicConstraints=critical,CA:TRUE"
expect_csr_rejected "$FA_TMP/ca.csr" "CA:TRUE" "CSR asking for CA:TRUE"
dev_csr policy -addext "certificatePolicies=1.2.3.4"
expect_csr_rejected "$FA_TMP/policy.csr" "Certificate Policies" \
	"CSR with certificatePolicies"

# Unknown fields and missing fields.
fa_api_as "" POST /v1/devices/enroll "$(jq -cn --arg c "$DEV_CODE" \
	'{enrollment_code: $c, csr: "x", extra: 1}')"
fa_expect_status 400 "enrollment with an unknown field"
fa_api_as "" POST /v1/devices/enroll '{"csr": "x"}'
fa_expect_status 400 "enrollment without a code"

# None of the rejected requests used the code: it still enrolls, once.
fa_expect_eq "$(fa_sql "SELECT count(*) FROM enrollment_codes
	WHERE device_id = '$device' AND used_at IS NULL")" 1 "code still unused"
dev_csr allowed -addext "subjectAltName=DNS:example.invalid" \
	-addext "keyUsage=digitalSignature"
dev_enroll_request "$DEV_CODE" "$FA_TMP/allowed.csr"
fa_expect_status 201 "enrollment with allowed extensions"
jq -r .certificate <<<"$FA_BODY" >"$FA_TMP/allowed.pem"
fa_expect_not_contains "$(openssl x509 -in "$FA_TMP/allowed.pem" -noout \
	-ext subjectAltName)" "example.invalid" "requested SAN is ignored"

# Reusing the code fails with the generic message and an audit reason.
dev_csr again
dev_enroll_request "$DEV_CODE" "$FA_TMP/again.csr"
fa_expect_status 403 "reused enrollment code"
fa_expect_contains "$(jq -r .detail <<<"$FA_BODY")" "already used" \
	"message for a reused code"
fa_expect_contains "$(dev_audit device.enroll "$device")" \
	"denied|code_already_used" "audit of the reused code"
# Lower-case input is the same code.
dev_enroll_request "${DEV_CODE,,}" "$FA_TMP/again.csr"
fa_expect_status 403 "reused code in lower case"
fa_expect_eq "$(dev_audit device.enroll "$device" | tail -1)" \
	"denied|code_already_used" "audit of the lower-case code"

# An expired code (backdated in SQL) fails.
dev_provision "$token" "$carrier"
expired=$DEV_ID
fa_sql "UPDATE enrollment_codes SET expires_at = now() - interval '1 second'
	WHERE device_id = '$expired'"
dev_enroll_request "$DEV_CODE" "$FA_TMP/again.csr"
fa_expect_status 403 "expired enrollment code"
fa_expect_contains "$(dev_audit device.enroll "$expired")" \
	"denied|code_expired" "audit of the expired code"

# A new code for the pending device replaces the expired one.
fa_api_as "$token" POST "/v1/devices/$expired/enrollment-code"
fa_expect_status 201 "new enrollment code"
fresh=$(jq -r .enrollment_code <<<"$FA_BODY")
fa_expect_ne "$fresh" "$DEV_CODE" "new code differs"

# The code of a device revoked before enrollment is dead.
fa_api_as "$manager_token" POST "/v1/devices/$expired/revoke" \
	'{"reason": "decommissioned"}'
fa_expect_status 200 "revocation of a pending device"
dev_enroll_request "$fresh" "$FA_TMP/again.csr"
fa_expect_status 403 "code of a revoked device"
fa_api_as "$token" POST "/v1/devices/$expired/enrollment-code"
fa_expect_status 409 "new code for a revoked device"

# An unknown code fails the same way.
dev_enroll_request "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" "$FA_TMP/again.csr"
fa_expect_status 403 "unknown enrollment code"

# Revocation needs a known reason.
fa_api_as "$manager_token" POST "/v1/devices/$device/revoke" \
	'{"reason": "because"}'
fa_expect_status 400 "revocation with an unknown reason"

# Enough failures from one address get 429 with Retry-After.
fa_sql "UPDATE login_failures SET failures = 100, last_failure = now()
	WHERE scope = 'address' AND key LIKE 'device.enroll:%'"
curl -s -D "$FA_TMP/headers" -o /dev/null --max-time 5 \
	-H 'Content-Type: application/json' \
	--data-binary '{"enrollment_code": "X", "csr": "x"}' \
	"$FLEETAUTH_URL/v1/devices/enroll"
fa_expect_contains "$(head -1 "$FA_TMP/headers")" " 429" "throttled enrollment"
grep -qi '^Retry-After: [1-9]' "$FA_TMP/headers" ||
	fa_fail "429 without Retry-After: $(cat "$FA_TMP/headers")"
fa_sql "DELETE FROM login_failures WHERE scope = 'address'
	AND key LIKE 'device.%'"
