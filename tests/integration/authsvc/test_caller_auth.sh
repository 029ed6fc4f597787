#!/usr/bin/env bash
# Caller authentication: API keys (hash lookup, expiry, revocation, scopes)
# and access tokens (signature, claims, and the database state behind
# them). Every failure is 401 with WWW-Authenticate and is audited.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
. "$(dirname "$0")/common.sh"

c1=auth-$SFX
create_carrier "$c1"
create_user "fm-$SFX" fleet_manager "$c1"

# Stores an API key with role, carrier ('' for none), scopes (SQL array
# text) and expiry (SQL interval from now); prints the secret.
make_key()
{
	local id=$1 role=$2 carrier=$3 scopes=$4 expires=$5 secret hash
	secret="fak_$(openssl rand 32 | fa_b64url)"
	hash=$(printf '%s' "$secret" | sha256sum | cut -d' ' -f1)
	fa_sql "INSERT INTO api_keys (id, name, key_prefix, key_hash, role,
		carrier_id, scopes, created_by, expires_at)
		VALUES ('$id', 'test key', left('$secret', 8),
		decode('$hash', 'hex'), '$role', nullif('$carrier', ''),
		'$scopes', 'test', now() + interval '$expires')" >/dev/null
	printf '%s\n' "$secret"
}

expect_unauthenticated()
{
	local what=$1
	expect_problem 401 unauthenticated "$what"
	fa_expect_contains "$FA_HEADERS" "WWW-Authenticate: Bearer" \
		"$what: WWW-Authenticate"
}

# Missing or malformed credentials.
raw_api "" GET /v1/carriers
expect_unauthenticated "no Authorization header"
raw_api "" GET /v1/carriers -H "Authorization: Basic YWRtaW46YWRtaW4="
expect_unauthenticated "Basic scheme"
raw_api "fak_short" GET /v1/carriers
expect_unauthenticated "short API key"
raw_api "fak_$(openssl rand 32 | fa_b64url)" GET /v1/carriers
expect_unauthenticated "unknown API key"
raw_api "not-a-token" GET /v1/carriers
expect_unauthenticated "garbage token"
audited=$(fa_sql "SELECT count(*) FROM audit_events
	WHERE action = 'request.authenticate' AND outcome = 'denied'
	AND at > now() - interval '1 minute'")
((audited >= 5)) || fa_fail "only $audited denied authentications audited"

# API keys: scopes, expiry, revocation, last use.
readonly_key=$(make_key "ro-$SFX" system_admin "" '{carriers:read}' '1 day')
raw_api "$readonly_key" GET /v1/carriers
fa_expect_status 200 "key with carriers:read lists carriers"
used=$(fa_sql "SELECT last_used_at IS NOT NULL FROM api_keys
	WHERE id = 'ro-$SFX'")
fa_expect_eq "$used" t "last_used_at after use"
raw_api "$readonly_key" POST /v1/carriers -H 'Content-Type: application/json' \
	--data-binary "{\"id\": \"k-$SFX\", \"name\": \"K\"}"
expect_problem 403 forbidden "key without carriers:write creates carrier"
raw_api "$readonly_key" GET /v1/users
expect_problem 403 forbidden "key without users:read lists users"

carrier_key=$(make_key "ck-$SFX" dispatcher "$c1" '{*}' '1 day')
raw_api "$carrier_key" POST /v1/loads -H 'Content-Type: application/json' \
	--data-binary "{\"id\": \"kl-$SFX\"}"
fa_expect_status 201 "carrier key creates a load of its carrier"
fa_expect_eq "$(body_field .carrier)" "$c1" "carrier of the key's load"
fa_expect_eq "$(body_field .created_by)" "ck-$SFX" "created_by of the load"

expired_key=$(make_key "ex-$SFX" system_admin "" '{*}' '-1 second')
raw_api "$expired_key" GET /v1/carriers
expect_unauthenticated "expired API key"
revoked_key=$(make_key "rv-$SFX" system_admin "" '{*}' '1 day')
fa_sql "UPDATE api_keys SET revoked_at = now() WHERE id = 'rv-$SFX'"
raw_api "$revoked_key" GET /v1/carriers
expect_unauthenticated "revoked API key"

# Access tokens.
fm=$(token_for "fm-$SFX" fleet_manager "$c1")
raw_api "$fm" GET "/v1/carriers/$c1"
fa_expect_status 200 "valid token"

claims=$(fa_claims "fm-$SFX" fleet_manager "$c1")
kid=$(fa_current_kid)
none=$(fa_jwt_sign '{"alg": "none", "typ": "at+jwt"}' "$claims")
raw_api "$none" GET "/v1/carriers/$c1"
expect_unauthenticated "alg none"
tampered=$(fa_mint_token "$claims")
tampered="${tampered%.*}.$(printf 'x%.0s' {1..342})"
raw_api "$tampered" GET "/v1/carriers/$c1"
expect_unauthenticated "bad signature"
raw_api "$(fa_mint_token "$claims" '{"kid": "no-such-kid"}')" \
	GET "/v1/carriers/$c1"
expect_unauthenticated "unknown kid"
raw_api "$(token_for "fm-$SFX" fleet_manager "$c1" '{"exp": 1000}')" \
	GET "/v1/carriers/$c1"
expect_unauthenticated "expired token"
raw_api "$(token_for "fm-$SFX" fleet_manager "$c1" '{"aud": "other"}')" \
	GET "/v1/carriers/$c1"
expect_unauthenticated "wrong audience"
raw_api "$(token_for "fm-$SFX" fleet_manager "$c1" '{"iss": "other"}')" \
	GET "/v1/carriers/$c1"
expect_unauthenticated "wrong issuer"

# The token must match the user's current state.
raw_api "$(token_for "ghost-$SFX" fleet_manager "$c1")" GET "/v1/carriers/$c1"
expect_unauthenticated "token of an unknown user"
raw_api "$(token_for "fm-$SFX" system_admin "")" GET /v1/carriers
expect_unauthenticated "token claiming a higher role"
raw_api "$(token_for "fm-$SFX" fleet_manager "other-$SFX")" \
	GET "/v1/carriers/$c1"
expect_unauthenticated "token claiming another carrier"
jti=$(jq -r .jti <<<"$claims")
signed=$(fa_mint_token "$claims")
fa_sql "INSERT INTO revoked_access_tokens (jti, expires_at)
	VALUES ('$jti', now() + interval '1 hour')"
raw_api "$signed" GET "/v1/carriers/$c1"
expect_unauthenticated "revoked jti"
raw_api "$(token_for "fm-$SFX" fleet_manager "$c1" \
	"{\"fam\": \"nofam-$SFX\"}")" GET "/v1/carriers/$c1"
expect_unauthenticated "unknown refresh family"
fa_sql "INSERT INTO principals (id, kind) VALUES ('ph-$SFX', 'device');
	INSERT INTO devices (id, carrier_id, device_type, status, created_by)
	VALUES ('ph-$SFX', '$c1', 'phone', 'active', 'test')" >/dev/null
bound=$(token_for "fm-$SFX" fleet_manager "$c1" "{\"did\": \"ph-$SFX\"}")
raw_api "$bound" GET "/v1/carriers/$c1"
fa_expect_status 200 "token bound to an active device"
fa_sql "UPDATE devices SET status = 'revoked' WHERE id = 'ph-$SFX'"
raw_api "$bound" GET "/v1/carriers/$c1"
expect_unauthenticated "token bound to a revoked device"

# Reasons are audited, tokens never.
reasons=$(fa_sql "SELECT string_agg(DISTINCT detail->>'reason', ',')
	FROM audit_events WHERE action = 'request.authenticate'
	AND at > now() - interval '1 minute'")
fa_expect_contains "$reasons" "expired" "audited reasons"
fa_expect_contains "$reasons" "token revoked or user changed" \
	"audited reasons"
leaked=$(fa_sql "SELECT count(*) FROM audit_events
	WHERE detail::text LIKE '%$readonly_key%'
	OR detail::text LIKE '%${fm:0:40}%'")
fa_expect_eq "$leaked" 0 "audit events containing a credential"
if grep -q -- "${fm:0:40}" "$FLEETAUTH_STACK_DIR/logs/fleetauthd.log"; then
	fa_fail "an access token appears in the log"
fi
