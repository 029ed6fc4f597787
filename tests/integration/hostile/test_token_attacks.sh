#!/usr/bin/env bash
# Forged, altered and out-of-policy access tokens sent as MQTT passwords:
# the plugin must refuse every CONNECT and keep serving valid clients.
set -euo pipefail
. "$(dirname "$0")/common.sh"
hostile_init "$@"
hostile_start_broker attacks failed_connect_limit=0
hostile_wait_user "$H_DRIVER" driver

now=$(date +%s)
kid=$(fa_current_kid)
drv=$H_DRIVER
claims=$(fa_claims "$drv" driver "$H_CARRIER")
good=$(fa_mint_token "$claims")
header_b64=$(printf '%s' "${good%%.*}")
rest=${good#*.}
claims_b64=${rest%%.*}
signature=${rest#*.}

hostile_expect_accepted "valid token" "$drv" "$good"

# Signs header and claims with HMAC-SHA256 under the public key's PEM text,
# the classic RS256-to-HS256 confusion.
public_pem=$FA_TMP/public.pem
openssl pkey -in "$FLEETAUTH_SIGNING_KEY" -pubout -out "$public_pem"
hs_header=$(jq -cn --arg k "$kid" '{alg: "HS256", kid: $k, typ: "at+jwt"}')
hs_input="$(printf '%s' "$hs_header" | fa_b64url).$claims_b64"
hs_sig=$(printf '%s' "$hs_input" | openssl dgst -sha256 -mac HMAC \
	-macopt "hexkey:$(xxd -p "$public_pem" | tr -d '\n')" -binary |
	fa_b64url)
hostile_expect_refused "alg HS256 keyed with the public key" "$drv" \
	"$hs_input.$hs_sig"

none_header=$(printf '%s' '{"alg":"none","typ":"at+jwt"}' | fa_b64url)
hostile_expect_refused "alg none, empty signature" "$drv" \
	"$none_header.$claims_b64."
hostile_expect_refused "alg none, signature kept" "$drv" \
	"$none_header.$claims_b64.$signature"
hostile_expect_refused "alg None with kid" "$drv" \
	"$(printf '{"alg":"None","kid":"%s"}' "$kid" | fa_b64url).$claims_b64."

for bad_kid in '../../etc/passwd' "' OR 1=1 --" "$kid'; DROP TABLE users; --" \
	'' '%00' "$kid/../$kid"; do
	hostile_expect_refused "kid '$bad_kid'" "$drv" \
		"$(fa_mint_token "$claims" "$(jq -cn --arg k "$bad_kid" \
			'{kid: $k}')")"
done
hostile_expect_refused "kid missing" "$drv" \
	"$(fa_jwt_sign '{"alg":"RS256","typ":"at+jwt"}' "$claims")"
hostile_expect_refused "kid is a number" "$drv" \
	"$(fa_mint_token "$claims" '{"kid": 1}')"
hostile_expect_refused "typ JWT" "$drv" \
	"$(fa_mint_token "$claims" '{"typ": "JWT"}')"
hostile_expect_refused "crit header" "$drv" \
	"$(fa_mint_token "$claims" '{"crit": ["exp"]}')"

claim_case()
{
	local what=$1 extra=$2
	hostile_expect_refused "$what" "$drv" \
		"$(fa_mint_token "$(fa_claims "$drv" driver "$H_CARRIER" 900 \
			"$extra")")"
}
claim_case "exp missing" "$(jq -cn '{exp: null}')"
claim_case "exp a string" "$(jq -cn --argjson n "$now" \
	'{exp: ($n + 600 | tostring)}')"
claim_case "exp 10 years ahead" "$(jq -cn --argjson n "$now" \
	'{exp: ($n + 315360000)}')"
claim_case "exp 2 hours ahead (over max_token_lifetime)" \
	"$(jq -cn --argjson n "$now" '{exp: ($n + 7200)}')"
claim_case "exp 120 s ago" "$(jq -cn --argjson n "$now" \
	'{exp: ($n - 120), iat: ($n - 600), nbf: ($n - 600)}')"
claim_case "nbf 1 hour ahead" "$(jq -cn --argjson n "$now" \
	'{nbf: ($n + 3600), exp: ($n + 3700)}')"
claim_case "iat 1 hour ahead" "$(jq -cn --argjson n "$now" \
	'{iat: ($n + 3600), nbf: $n, exp: ($n + 3700)}')"
claim_case "aud of the HTTP API" '{"aud": "fleetauth-api"}'
claim_case "aud array without the broker" '{"aud": ["x", "y"]}'
claim_case "iss of another service" '{"iss": "evil"}'
claim_case "role raised to fleet_manager" '{"role": "fleet_manager"}'
claim_case "role system_admin without carrier" \
	'{"role": "system_admin", "carrier": null}'
claim_case "carrier of another tenant" '{"carrier": "other-carrier"}'
claim_case "sub with a wildcard" "$(jq -cn --arg s "$drv/#" '{sub: $s}')"
claim_case "jti missing" '{"jti": null}'

# Username and client id must be the token's subject.
hostile_pub -i "$H_DISPATCHER" -u "$H_DISPATCHER" -P "$good" -q 1 \
	-t "fleet/$H_CARRIER/drivers/$drv/status" -m x
fa_expect_ne "$FA_MQTT_RC" 0 "exit code for another user's username"
hostile_pub -i "$H_DISPATCHER" -u "$drv" -P "$good" -q 1 \
	-t "fleet/$H_CARRIER/drivers/$drv/status" -m x
fa_expect_ne "$FA_MQTT_RC" 0 "exit code for another user's client id"

# Damaged tokens.
hostile_expect_refused "truncated signature" "$drv" "${good:0:${#good}-10}"
hostile_expect_refused "token cut in the payload" "$drv" "${good:0:200}"
flipped=${signature:0:10}$([[ ${signature:10:1} == A ]] && echo B ||
	echo A)${signature:11}
hostile_expect_refused "one signature character changed" "$drv" \
	"$header_b64.$claims_b64.$flipped"
hostile_expect_refused "four parts" "$drv" "$good.$signature"
hostile_expect_refused "padding added" "$drv" "$good=="
hostile_expect_refused "claims of another user under this signature" \
	"$drv" "$header_b64.$(fa_claims "$H_DISPATCHER" dispatcher \
		"$H_CARRIER" | fa_b64url).$signature"
foreign_key=$FA_TMP/foreign.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
	-out "$foreign_key" 2>/dev/null
hostile_expect_refused "signed by a foreign key under the current kid" \
	"$drv" "$(fa_jwt_sign "$(jq -cn --arg k "$kid" \
		'{alg: "RS256", kid: $k, typ: "at+jwt"}')" "$claims" \
		"$foreign_key")"

# Oversized passwords: 100 KB of token-like text and 60 KB of binary.
big=$(head -c 75000 /dev/urandom | openssl base64 -A | tr '+/' '-_' |
	tr -d '=' | head -c 100000)
hostile_expect_refused "100 KB password" "$drv" "$good.$big"
hostile_expect_refused "100 KB password without dots" "$drv" "$big"

# After all of the above the broker still runs and accepts a valid token.
kill -0 "$H_BROKER_PID" || fa_fail "the broker exited during the attacks"
hostile_expect_accepted "valid token after the attacks" "$drv" \
	"$(fa_mint_token "$(fa_claims "$drv" driver "$H_CARRIER")")"
grep -q 'fleetauth:.*token rejected' "$H_BROKER_LOG" ||
	fa_fail "the broker log has no 'token rejected' denial line"
if grep -qF "$good" "$H_BROKER_LOG"; then
	fa_fail "the broker log contains a token"
fi
fa_log "ok"
