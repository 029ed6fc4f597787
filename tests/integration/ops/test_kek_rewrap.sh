#!/usr/bin/env bash
# Key-encryption key rotation. "fleetauthd kek rewrap" with a new kek_id and
# the old key in kek_previous re-encrypts every TOTP seed, signing key and
# CA key under the new KEK in batches. A second run finds nothing to do. A
# fleetauthd that loads only the new KEK still completes a TOTP login and
# signs tokens. At exit the secrets are rewrapped back to the stack's KEK.
. "$(dirname "$0")/common.sh"
ops_init "$@"

old_id=$(sed -n 's/^kek_id[[:space:]]*=[[:space:]]*//p' \
	"$FLEETAUTH_STACK_DIR/fleetauthd.conf")
old_file=$(sed -n 's/^kek_file[[:space:]]*=[[:space:]]*//p' \
	"$FLEETAUTH_STACK_DIR/fleetauthd.conf")
[[ -n $old_id && -n $old_file ]] ||
	fa_fail "the stack's fleetauthd.conf has no kek_id or kek_file"
new_id=kek-$OPS_RUN
new_file=$FA_TMP/$new_id.hex
(umask 077 && openssl rand -hex 32 >"$new_file")

# A driver with confirmed TOTP, so that user_totp has a sealed seed.
carrier=$(ops_carrier kek)
user=$(ops_user drv driver "$carrier")
token=$(ops_login "$user")
fa_api_as "$token" POST /v1/mfa/totp/enroll
fa_expect_status 200 "TOTP enrollment"
secret=$(jq -r .secret <<<"$FA_BODY")
fa_api_as "$token" POST /v1/mfa/totp/confirm \
	"$(jq -cn --arg c "$(ops_totp "$secret")" '{code: $c}')"
fa_expect_status 200 "TOTP confirmation"

count_sealed()
{
	fa_sql "SELECT (SELECT count(*) FROM user_totp WHERE kek_id = '$1')
		+ (SELECT count(*) FROM signing_keys WHERE kek_id = '$1')
		+ (SELECT count(*) FROM fleet_ca WHERE kek_id = '$1')"
}
sealed_before=$(count_sealed "$old_id")
((sealed_before >= 2)) ||
	fa_fail "expected a TOTP seed and a signing key under $old_id," \
		"found $sealed_before secrets"
totp_before=$(fa_sql "SELECT encode(secret_enc, 'hex') FROM user_totp
	WHERE user_id = '$user'")

ops_config "$FA_TMP/rewrap.conf" "kek_file=$new_file" "kek_id=$new_id" \
	"kek_previous=$old_id:$old_file"
ops_config "$FA_TMP/restore.conf" "kek_previous=$new_id:$new_file"
fa_on_exit "'$FLEETAUTHD' -c '$FA_TMP/restore.conf' kek rewrap >/dev/null"

# --- Rewrap in batches of 1 row per transaction.
out=$("$FLEETAUTHD" -c "$FA_TMP/rewrap.conf" kek rewrap --batch 1 \
	2>"$FA_TMP/rewrap.err") ||
	fa_fail "kek rewrap failed: $(cat "$FA_TMP/rewrap.err")"
fa_expect_contains "$out" "every sealed secret uses KEK \"$new_id\"" \
	"result of kek rewrap"
done_total=$(awk '$1 == "rewrapped" { n += $3 } END { print n + 0 }' \
	<<<"$out")
fa_expect_eq "$done_total" "$sealed_before" "rows reported by kek rewrap"
fa_expect_eq "$(count_sealed "$old_id")" 0 "secrets left under $old_id"
fa_expect_eq "$(count_sealed "$new_id")" "$sealed_before" \
	"secrets under $new_id"
fa_expect_ne "$(fa_sql "SELECT encode(secret_enc, 'hex') FROM user_totp
	WHERE user_id = '$user'")" "$totp_before" "sealed TOTP seed"
fa_expect_eq "$(fa_sql "SELECT (detail->>'user_totp')::int
	+ (detail->>'signing_keys')::int + (detail->>'fleet_ca')::int
	FROM audit_events WHERE action = 'kek.rewrap' AND target = '$new_id'
	AND outcome = 'success' ORDER BY id LIMIT 1")" "$sealed_before" \
	"rows in the kek.rewrap audit event"
status=$("$FLEETAUTHD" -c "$FA_TMP/rewrap.conf" kek status)
fa_expect_contains "$status" "user_totp $new_id " "kek status"
fa_expect_not_contains "$status" " $old_id " "kek status after rewrap"

# --- A second run changes nothing.
out=$("$FLEETAUTHD" -c "$FA_TMP/rewrap.conf" kek rewrap) ||
	fa_fail "second kek rewrap failed"
fa_expect_eq "$(awk '$1 == "rewrapped" { n += $3 } END { print n + 0 }' \
	<<<"$out")" 0 "rows of a second kek rewrap"

# --- A service with only the new KEK: TOTP login and token signing.
ops_config "$FA_TMP/new-only.conf" "kek_file=$new_file" "kek_id=$new_id" \
	"kek_previous="
ops_start_service "$FA_TMP/new-only.conf"
ops_post /v1/auth/login "$(jq -cn --arg u "$user" --arg p "$OPS_PASSWORD" \
	'{username: $u, password: $p}')" "$OPS_SERVICE_URL"
fa_expect_status 200 "password step with only the new KEK"
mfa_token=$(jq -r '.mfa_token // empty' <<<"$FA_BODY")
[[ -n $mfa_token ]] || fa_fail "login did not ask for TOTP: $FA_BODY"
# The confirmation used the current step, so send the code of the next one.
ops_post /v1/auth/mfa/totp "$(jq -cn --arg t "$mfa_token" \
	--arg c "$(ops_totp "$secret" 30)" '{mfa_token: $t, code: $c}')" \
	"$OPS_SERVICE_URL"
fa_expect_status 200 "TOTP step with only the new KEK"
access=$(jq -r '.access_token // empty' <<<"$FA_BODY")
[[ -n $access ]] || fa_fail "TOTP step returned no access token: $FA_BODY"
fa_expect_eq "$(ops_jwt_part "$access" 1 | jq -c .amr)" '["pwd","otp"]' \
	"amr of the token issued with only the new KEK"
fa_expect_eq "$(ops_get_status "$access" /v1/mfa/device-keys \
	"$OPS_SERVICE_URL")" 200 "API call with that token"

# A KEK that is not loaded is reported, and rewrap fails instead of
# skipping it silently.
ops_config "$FA_TMP/unknown.conf" "kek_file=$old_file" "kek_id=$old_id" \
	"kek_previous="
if "$FLEETAUTHD" -c "$FA_TMP/unknown.conf" kek rewrap \
	>/dev/null 2>"$FA_TMP/unknown.err"; then
	fa_fail "kek rewrap succeeded although $new_id was not loaded"
fi
fa_expect_contains "$(cat "$FA_TMP/unknown.err")" "\"$new_id\", which is not loaded" \
	"error for a KEK that is not loaded"

echo "PASS: $(basename "$0")"
