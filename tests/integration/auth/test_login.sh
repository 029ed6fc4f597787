#!/usr/bin/env bash
# Password login: tokens and claims, one response for unknown users and
# wrong passwords, passwords longer than 72 bytes, inactive users, the access
# window and malformed requests.
. "$(dirname "$0")/common.sh"
auth_init "$@"

carrier=$(auth_carrier login)
driver=$(auth_user drv driver "$carrier")
admin=$(auth_user ops system_admin '')

# --- A successful login returns both tokens and a token that works.
auth_login "$driver" "$AUTH_PASSWORD" 200
access=$(auth_field access_token)
refresh=$(auth_field refresh_token)
fa_expect_eq "$(auth_field token_type)" Bearer "token_type"
fa_expect_eq "$(jq -r .expires_in <<<"$FA_BODY")" 900 "expires_in"
[[ $refresh =~ ^frt_[A-Za-z0-9_-]{43}$ ]] ||
	fa_fail "refresh token is not frt_ + 43 base64url characters: $refresh"
header=$(auth_jwt_part "$access" 0)
claims=$(auth_jwt_part "$access" 1)
fa_expect_eq "$(jq -r .typ <<<"$header")" at+jwt "header typ"
fa_expect_eq "$(jq -r .alg <<<"$header")" RS256 "header alg"
fa_expect_eq "$(jq -r .kid <<<"$header")" "$(fa_current_kid)" "header kid"
fa_expect_eq "$(jq -r .sub <<<"$claims")" "$driver" "claim sub"
fa_expect_eq "$(jq -r .role <<<"$claims")" driver "claim role"
fa_expect_eq "$(jq -r .carrier <<<"$claims")" "$carrier" "claim carrier"
fa_expect_eq "$(jq -c .amr <<<"$claims")" '["pwd"]' "claim amr"
fa_expect_eq "$(jq -r .iss <<<"$claims")" "$FLEETAUTH_ISSUER" "claim iss"
fa_expect_eq "$(jq -r .aud <<<"$claims")" "$FLEETAUTH_AUDIENCE" "claim aud"
fa_expect_eq "$(jq -r '.exp - .iat' <<<"$claims")" 900 "token lifetime"
fa_expect_eq "$(jq -r '.nbf == .iat' <<<"$claims")" true "nbf equals iat"
family=$(jq -r .fam <<<"$claims")
fa_expect_eq "$(fa_sql "SELECT user_id || ' ' || amr::text
	FROM refresh_families WHERE id = '$family'")" "$driver {pwd}" \
	"family row of the login"
jti=$(jq -r .jti <<<"$claims")
[[ $jti =~ ^[A-Za-z0-9_-]{22}$ ]] || fa_fail "jti is not 22 id characters"
fa_expect_eq "$(auth_get_status "$access" /v1/mfa/device-keys)" 200 \
	"request with the new access token"
fa_expect_eq "$(auth_audit_count login "$driver" success)" 1 \
	"audit of the successful login"

# Platform roles carry no carrier claim.
auth_login "$admin" "$AUTH_PASSWORD" 200
claims=$(auth_jwt_part "$(auth_field access_token)" 1)
fa_expect_eq "$(jq -r 'has("carrier")' <<<"$claims")" false \
	"carrier claim of a platform role"
fa_expect_eq "$(jq -r .role <<<"$claims")" system_admin "platform role"

# --- Unknown user and wrong password get the same status and body.
auth_login "nobody-$AUTH_RUN" "$AUTH_PASSWORD" 401
unknown_body=$(jq -c 'del(.instance)' <<<"$FA_BODY")
auth_login "$driver" "wrong password for $AUTH_RUN" 401
wrong_body=$(jq -c 'del(.instance)' <<<"$FA_BODY")
fa_expect_eq "$wrong_body" "$unknown_body" \
	"body of unknown user vs wrong password"
fa_expect_contains "$wrong_body" "invalid username or password" \
	"message of a failed login"
fa_expect_eq "$(auth_audit_count login "nobody-$AUTH_RUN" failure)" 1 \
	"audit of the unknown user"
fa_expect_eq "$(auth_audit_count login "$driver" failure)" 1 \
	"audit of the wrong password"
# A successful login clears the account's failure counter.
auth_login "$driver" "$AUTH_PASSWORD" 200
fa_expect_eq "$(fa_sql "SELECT count(*) FROM login_failures
	WHERE scope = 'user' AND key = '$driver'")" 0 \
	"failure counter after a successful login"

# --- Passwords over 72 bytes are pre-hashed, not truncated: the first 72
# bytes alone and a change after byte 72 must both fail.
long=$(printf 'L%.0s' $(seq 1 80))-$AUTH_RUN-tail
prefix=${long:0:72}
changed="${long:0:90}X${long:91}"
long_user=$(auth_user long driver "$carrier" "$long")
hash=$(fa_sql "SELECT password_hash FROM users WHERE id = '$long_user'")
fa_expect_eq "${hash:0:4}" '$2b$' "hash prefix of a long password"
auth_login "$long_user" "$long" 200
auth_login "$long_user" "$prefix" 401
auth_login "$long_user" "$changed" 401
auth_login "$long_user" "$long" 200

# A password over the 1024-byte limit is invalid input.
huge=$(printf 'x%.0s' $(seq 1 1025))
auth_login "$driver" "$huge" 400

# --- Password policy for new users: length in characters, common
# passwords in any case.
for password in 'short pw' 'PassWord1234' '密码密码密码'; do
	fa_api POST /v1/users "$(jq -cn --arg u "weak-$RANDOM-$AUTH_RUN" \
		--arg p "$password" --arg c "$carrier" \
		'{username: $u, password: $p, role: "driver", carrier: $c}')"
	fa_expect_status 400 "new user with password '$password'"
	fa_expect_contains "$FA_BODY" "password" "policy message"
done

# --- An inactive user cannot log in, with the same message as above.
inactive=$(auth_user inactive driver "$carrier")
fa_sql "UPDATE users SET status = 'disabled' WHERE id = '$inactive'"
auth_login "$inactive" "$AUTH_PASSWORD" 401
fa_expect_eq "$(jq -c 'del(.instance)' <<<"$FA_BODY")" "$unknown_body" \
	"body for an inactive user"

# --- Access window in the carrier's time zone: outside it the login is
# refused with 403 after the password check; inside it succeeds.
windowed=$(auth_user window driver "$carrier")
fa_sql "UPDATE carriers SET time_zone = 'Asia/Tokyo' WHERE id = '$carrier'"
fa_sql "UPDATE users SET
	window_start = ((now() AT TIME ZONE 'Asia/Tokyo') + interval '2 hours')::time,
	window_end = ((now() AT TIME ZONE 'Asia/Tokyo') + interval '3 hours')::time
	WHERE id = '$windowed'"
auth_login "$windowed" "$AUTH_PASSWORD" 403
fa_expect_contains "$FA_BODY" "Asia/Tokyo" "window message names the zone"
fa_expect_eq "$(auth_audit_count login "$windowed" denied)" 1 \
	"audit of a login outside the window"
auth_login "$windowed" "wrong password for $AUTH_RUN" 401
fa_sql "UPDATE users SET
	window_start = ((now() AT TIME ZONE 'Asia/Tokyo') - interval '1 hour')::time,
	window_end = ((now() AT TIME ZONE 'Asia/Tokyo') + interval '1 hour')::time
	WHERE id = '$windowed'"
auth_login "$windowed" "$AUTH_PASSWORD" 200
# A window from one hour ahead to one hour back excludes now. Unless the
# local time is near midnight, its end is before its start, so it wraps.
fa_sql "UPDATE users SET
	window_start = ((now() AT TIME ZONE 'Asia/Tokyo') + interval '1 hour')::time,
	window_end = ((now() AT TIME ZONE 'Asia/Tokyo') - interval '1 hour')::time
	WHERE id = '$windowed'"
auth_login "$windowed" "$AUTH_PASSWORD" 403

# --- Malformed requests.
auth_post /v1/auth/login "{\"username\": \"$driver\"}"
fa_expect_status 400 "login without password"
auth_post /v1/auth/login "$(jq -cn --arg u "$driver" --arg p "$AUTH_PASSWORD" \
	'{username: $u, password: $p, remember: true}')"
fa_expect_status 400 "login with an unknown field"
auth_post /v1/auth/login "{\"username\": \"a/b\", \"password\": \"x\"}"
fa_expect_status 400 "login with an invalid username"
auth_post /v1/auth/login '{"username": 5, "password": "x"}'
fa_expect_status 400 "login with a numeric username"
auth_post /v1/auth/login '{"username": '
fa_expect_status 400 "login with broken JSON"
status=$(curl -s -o /dev/null -w '%{http_code}' --interface "$AUTH_ADDRESS" \
	-X POST -H 'Content-Type: text/plain' \
	--data-binary "{\"username\": \"$driver\", \"password\": \"x\"}" \
	"$FLEETAUTH_URL/v1/auth/login")
fa_expect_eq "$status" 415 "login without a JSON content type"
fa_expect_not_contains "$FA_BODY" "SQL" "error detail"
echo "PASS: $(basename "$0")"
