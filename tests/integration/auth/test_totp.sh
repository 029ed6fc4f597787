#!/usr/bin/env bash
# TOTP: enrollment and confirmation, the MFA step of a login, wrong and
# replayed codes, expired and reused MFA tokens, and the sealed seed.
. "$(dirname "$0")/common.sh"
auth_init "$@"

carrier=$(auth_carrier totp)
user=$(auth_user drv driver "$carrier")

auth_login "$user" "$AUTH_PASSWORD" 200
access=$(auth_field access_token)

# Prints a six-digit code that matches none of the steps now-1..now+1.
wrong_code()
{
	local code=000000 valid
	valid=" $(auth_totp "$secret" -30) $(auth_totp "$secret")"
	valid+=" $(auth_totp "$secret" 30) "
	while [[ $valid == *" $code "* ]]; do
		code=$(printf '%06d' $((10#$code + 1)))
	done
	printf '%s\n' "$code"
}

# Logs in with the password and prints the MFA token of the challenge.
mfa_token()
{
	auth_login "$user" "$AUTH_PASSWORD" 200
	fa_expect_eq "$(jq -r .mfa_required <<<"$FA_BODY")" totp \
		"mfa_required after the password step"
	fa_expect_eq "$(jq -r 'has("access_token")' <<<"$FA_BODY")" false \
		"access token before the TOTP step"
	auth_field mfa_token
}

mfa_step()
{
	auth_post /v1/auth/mfa/totp "$(jq -cn --arg t "$1" --arg c "$2" \
		'{mfa_token: $t, code: $c}')"
}

# --- Enrollment returns the secret once; confirmation activates it.
fa_api_as "$access" POST /v1/mfa/totp/enroll
fa_expect_status 200 "TOTP enrollment"
secret=$(jq -r .secret <<<"$FA_BODY")
uri=$(jq -r .otpauth_uri <<<"$FA_BODY")
[[ $secret =~ ^[A-Z2-7]{32}$ ]] || fa_fail "secret is not 32 base32 chars"
fa_expect_contains "$uri" "otpauth://totp/fleetauth:$user?secret=$secret" \
	"otpauth URI"
fa_expect_contains "$uri" "period=30" "otpauth URI period"
# The seed is stored sealed, never in clear or in base32.
row=$(fa_sql "SELECT kek_id || ' ' || length(secret_enc) || ' ' ||
	CASE WHEN confirmed_at IS NULL THEN 't' ELSE 'f' END
	FROM user_totp WHERE user_id = '$user'")
fa_expect_eq "$row" "dev-kek-1 49 t" "sealed seed row (1+12+20+16 bytes)"
fa_expect_eq "$(fa_sql "SELECT position(decode('$(printf '%s' "$secret" |
	base32 -d | od -An -tx1 | tr -d ' \n')', 'hex') IN secret_enc) FROM user_totp
	WHERE user_id = '$user'")" 0 "seed bytes in the stored blob"

# Not confirmed yet: the login still needs only the password.
auth_login "$user" "$AUTH_PASSWORD" 200
auth_field access_token >/dev/null

# A second enrollment replaces the pending secret.
fa_api_as "$access" POST /v1/mfa/totp/enroll
fa_expect_status 200 "second enrollment before confirmation"
secret=$(jq -r .secret <<<"$FA_BODY")

fa_api_as "$access" POST /v1/mfa/totp/confirm "{\"code\": \"$(wrong_code)\"}"
fa_expect_status 400 "confirmation with a wrong code"
fa_api_as "$access" POST /v1/mfa/totp/confirm \
	"{\"code\": \"$(auth_totp "$secret")\"}"
fa_expect_status 200 "confirmation with the current code"
fa_api_as "$access" POST /v1/mfa/totp/confirm \
	"{\"code\": \"$(auth_totp "$secret")\"}"
fa_expect_status 409 "second confirmation"
fa_api_as "$access" POST /v1/mfa/totp/enroll
fa_expect_status 409 "enrollment with TOTP enabled"
fa_api POST /v1/mfa/totp/enroll
fa_expect_status 403 "enrollment with an API key"

# --- Login with TOTP. The confirmation used the current step, so the
# login uses the next one (accepted within one step of drift).
token=$(mfa_token)
fa_expect_eq "$(fa_sql "SELECT count(*) FROM mfa_challenges WHERE
	token_hash = sha256(convert_to('$token', 'UTF8'))
	AND user_id = '$user' AND used_at IS NULL")" 1 "stored MFA token hash"
mfa_step "$token" "$(wrong_code)"
fa_expect_status 401 "wrong TOTP code"
fa_expect_contains "$FA_BODY" "invalid TOTP code" "wrong code message"
mfa_step "$token" 12345
fa_expect_status 400 "five-digit code"
code=$(auth_totp "$secret" 30)
mfa_step "$token" "$code"
fa_expect_status 200 "TOTP step with the next step's code"
claims=$(auth_jwt_part "$(auth_field access_token)" 1)
fa_expect_eq "$(jq -c .amr <<<"$claims")" '["pwd","otp"]' "amr after TOTP"
family=$(jq -r .fam <<<"$claims")
fa_expect_eq "$(fa_sql "SELECT amr::text FROM refresh_families
	WHERE id = '$family'")" '{pwd,otp}' "family amr after TOTP"
# The refreshed access token keeps both methods.
auth_post /v1/auth/refresh "$(jq -cn --arg t "$(auth_field refresh_token)" \
	'{refresh_token: $t}')"
fa_expect_status 200 "refresh after TOTP"
fa_expect_eq "$(auth_jwt_part "$(auth_field access_token)" 1 | jq -c .amr)" \
	'["pwd","otp"]' "amr after refresh"

# The MFA token is single use.
mfa_step "$token" "$code"
fa_expect_status 401 "reused MFA token"
fa_expect_contains "$FA_BODY" "MFA token is invalid" "reused token message"

# --- Replay: the same code (same step) with a fresh MFA token fails, and
# so does every earlier step.
token=$(mfa_token)
mfa_step "$token" "$code"
fa_expect_status 401 "replayed TOTP code"
mfa_step "$token" "$(auth_totp "$secret")"
fa_expect_status 401 "code of a step before the last accepted one"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM audit_events WHERE
	action = 'login.totp' AND target = '$user' AND outcome = 'failure'
	AND detail->>'reason' = 'replayed_code'")" 2 "audit of the replays"
# Clear the failures so far (they count towards the lockout).
fa_sql "DELETE FROM login_failures WHERE scope = 'user' AND key = '$user'"

# --- An expired MFA token is refused even with a valid code.
token=$(mfa_token)
fa_sql "UPDATE mfa_challenges SET expires_at = now() - interval '1 second'
	WHERE token_hash = sha256(convert_to('$token', 'UTF8'))"
mfa_step "$token" "$(auth_totp "$secret" 30)"
fa_expect_status 401 "expired MFA token"
mfa_step "not-a-token-$AUTH_RUN" "$(auth_totp "$secret" 30)"
fa_expect_status 401 "unknown MFA token"

# --- Wrong codes count towards the account lockout.
token=$(mfa_token)
for i in 1 2 3 4 5; do
	mfa_step "$token" "$(wrong_code)"
	fa_expect_status 401 "wrong code $i"
done
mfa_step "$token" "$(auth_totp "$secret" 30)"
fa_expect_status 429 "TOTP step of a locked account"
[[ -n $(auth_header Retry-After) ]] || fa_fail "429 without Retry-After"
echo "PASS: $(basename "$0")"
