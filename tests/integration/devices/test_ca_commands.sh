#!/usr/bin/env bash
# "fleetauthd ca": import checks the key and the CA flags, init makes a new
# current CA that the running service signs with at once, export writes the
# current and previous certificates, and the sealed key is not stored in
# the clear. The stack's own CA is imported again at the end, because the
# brokers trust only that one.
. "$(dirname "$0")/common.sh"
dev_init "$@"

ca()
{
	"$FLEETAUTHD" -c "$FLEETAUTHD_CONFIG" ca "$@" >"$FA_TMP/ca.out" \
		2>"$FA_TMP/ca.err"
}

restore_stack_ca()
{
	ca import --cert "$FLEETAUTH_CA_FILE" --key "$FLEETAUTH_CA_KEY_FILE" ||
		printf 'FAIL: re-importing the stack CA failed: %s\n' \
			"$(cat "$FA_TMP/ca.err")" >&2
}

fingerprint()
{
	openssl x509 -in "$1" -noout -fingerprint -sha256
}

# Export writes the current CA, which is the stack's.
ca export --out "$FA_TMP/export.pem" ||
	fa_fail "ca export failed: $(cat "$FA_TMP/ca.err")"
fa_expect_eq "$(fingerprint "$FA_TMP/export.pem")" \
	"$(fingerprint "$FLEETAUTH_CA_FILE")" "exported CA"

# Bad arguments and bad material are rejected without changing anything.
before=$(fa_sql "SELECT id FROM fleet_ca WHERE status = 'current'")
rc=0
ca init --days 0 || rc=$?
fa_expect_eq "$rc" 2 "exit status of init --days 0"
fa_expect_contains "$(cat "$FA_TMP/ca.err")" "--days 0 is invalid" \
	"message for --days 0"
rc=0
ca init --alg dsa || rc=$?
fa_expect_eq "$rc" 2 "exit status of init --alg dsa"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	-out "$FA_TMP/stranger.key" 2>/dev/null
rc=0
ca import --cert "$FLEETAUTH_CA_FILE" --key "$FA_TMP/stranger.key" || rc=$?
fa_expect_eq "$rc" 1 "exit status of import with another key"
fa_expect_contains "$(cat "$FA_TMP/ca.err")" "does not belong" \
	"message for a mismatched key"
fa_make_client_cert leaf
rc=0
ca import --cert "$FA_TMP/leaf.pem" --key "$FA_TMP/leaf.key" || rc=$?
fa_expect_eq "$rc" 1 "exit status of import of a leaf certificate"
fa_expect_contains "$(cat "$FA_TMP/ca.err")" "not a CA" \
	"message for a leaf certificate"
fa_expect_eq "$(fa_sql "SELECT id FROM fleet_ca WHERE status = 'current'")" \
	"$before" "current CA after rejected commands"

# A new RSA CA becomes current; from here on the stack CA must come back.
fa_on_exit restore_stack_ca
ca init --alg rsa --days 30 ||
	fa_fail "ca init failed: $(cat "$FA_TMP/ca.err")"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM fleet_ca
	WHERE status = 'previous' AND id = $before")" 1 "previous CA"
fa_expect_eq "$(fa_sql "SELECT kek_id FROM fleet_ca WHERE status = 'current'")" \
	dev-kek-1 "KEK id of the new CA"
fa_expect_eq "$(fa_sql "SELECT position(convert_to('PRIVATE KEY', 'UTF8')
	IN key_enc) FROM fleet_ca WHERE status = 'current'")" 0 \
	"plaintext key in key_enc"
fa_api_as "" GET /v1/ca
fa_expect_status 200 "GET /v1/ca"
jq -r .certificate <<<"$FA_BODY" >"$FA_TMP/new-ca.pem"
text=$(openssl x509 -in "$FA_TMP/new-ca.pem" -noout -text)
fa_expect_contains "$text" "CN = fleetauth fleet CA" "subject of the new CA"
fa_expect_contains "$text" "CA:TRUE" "basicConstraints of the new CA"
fa_expect_contains "$text" "Certificate Sign, CRL Sign" "keyUsage of the new CA"
fa_expect_contains "$text" "Public-Key: (3072 bit)" "key size of the new CA"
ca export --out "$FA_TMP/export2.pem" ||
	fa_fail "second ca export failed: $(cat "$FA_TMP/ca.err")"
fa_expect_eq "$(grep -c 'BEGIN CERTIFICATE' "$FA_TMP/export2.pem")" 2 \
	"certificates exported after a change"

# The running service signs with the new CA at once, certificates and CRLs.
carrier=$(dev_carrier ca)
dispatcher=$(dev_user disp dispatcher "$carrier")
dev_provision "$(dev_token "$dispatcher" dispatcher "$carrier")" "$carrier"
dev_enroll
openssl verify -CAfile "$FA_TMP/new-ca.pem" "$FA_TMP/$DEV_ID.pem" \
	>/dev/null || fa_fail "device certificate is not from the new CA"
fa_expect_eq "$(fingerprint "$FA_TMP/$DEV_ID-chain.pem")" \
	"$(fingerprint "$FA_TMP/new-ca.pem")" "ca_chain after the change"
curl -s --max-time 5 -o "$FA_TMP/crl.pem" "$FLEETAUTH_URL/v1/ca/crl"
openssl crl -in "$FA_TMP/crl.pem" -noout -CAfile "$FA_TMP/new-ca.pem" \
	2>"$FA_TMP/crl.err" || true
grep -q "verify OK" "$FA_TMP/crl.err" ||
	fa_fail "CRL is not signed by the new CA: $(cat "$FA_TMP/crl.err")"
