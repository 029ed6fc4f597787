#!/usr/bin/env bash
# Signing keys: tokens verify with openssl against the JWKS, rotation keeps
# the previous key valid during the overlap, a retired key's tokens are
# rejected, a key made by another process is picked up, and the list never
# shows private material. The stack's own key is made current again at exit.
. "$(dirname "$0")/common.sh"
auth_init "$@"

carrier=$(auth_carrier keys)
user=$(auth_user drv driver "$carrier")
admin=$(auth_user ops system_admin '')

stack_kid=$(fa_current_kid)
restore_stack_key()
{
	fa_sql "UPDATE signing_keys SET status = 'retired'
		WHERE status IN ('current', 'previous') AND kid <> '$stack_kid';
		UPDATE signing_keys SET status = 'current', publish_until = NULL
		WHERE kid = '$stack_kid'" >/dev/null
	# fleetauthd reloads its keyring for an unknown kid at most every 5 s.
	local minted
	minted=$(fa_mint_token "$(fa_claims "$admin" system_admin '')")
	fa_wait_for "[[ \$(auth_get_status '$minted' /v1/signing-keys) == 200 ]]" 20
}
fa_on_exit restore_stack_key

# Prints the hex of base64url text.
b64url_hex()
{
	local text
	text=$(tr '_-' '/+' <<<"$1")
	while ((${#text} % 4)); do text+='='; done
	openssl base64 -d -A <<<"$text" | od -An -tx1 | tr -d ' \n'
}

# Writes the public key of the JWK with kid from the JWKS into file as PEM,
# building the SubjectPublicKeyInfo from n/e or x/y with openssl asn1parse.
jwk_to_pem()
{
	local kid=$1 file=$2 jwk x y conf=$FA_TMP/jwk.cnf
	fa_api_as "" GET /.well-known/jwks.json
	fa_expect_status 200 "GET JWKS"
	jwk=$(jq -c --arg k "$kid" '.keys[] | select(.kid == $k)' <<<"$FA_BODY")
	[[ -n $jwk ]] || fa_fail "kid $kid is not in the JWKS: $FA_BODY"
	fa_expect_eq "$(jq -r .use <<<"$jwk")" sig "use of $kid"
	case $(jq -r .kty <<<"$jwk") in
	RSA)
		cat >"$conf" <<-CONF
		asn1 = SEQUENCE:spki
		[spki]
		algorithm = SEQUENCE:rsa_alg
		key = BITWRAP,SEQUENCE:rsa_key
		[rsa_alg]
		oid = OID:rsaEncryption
		parameters = NULL
		[rsa_key]
		n = INTEGER:0x$(b64url_hex "$(jq -r .n <<<"$jwk")")
		e = INTEGER:0x$(b64url_hex "$(jq -r .e <<<"$jwk")")
		CONF
		;;
	EC)
		fa_expect_eq "$(jq -r .crv <<<"$jwk")" P-256 "curve of $kid"
		x=$(b64url_hex "$(jq -r .x <<<"$jwk")")
		y=$(b64url_hex "$(jq -r .y <<<"$jwk")")
		cat >"$conf" <<-CONF
		asn1 = SEQUENCE:spki
		[spki]
		algorithm = SEQUENCE:ec_alg
		key = FORMAT:HEX,BITSTRING:04$x$y
		[ec_alg]
		oid = OID:id-ecPublicKey
		curve = OID:prime256v1
		CONF
		;;
	*) fa_fail "unexpected kty in $jwk" ;;
	esac
	openssl asn1parse -genconf "$conf" -out "$file.der" -noout >/dev/null ||
		fa_fail "openssl could not encode the JWK of $kid"
	openssl pkey -pubin -inform DER -in "$file.der" -out "$file" ||
		fa_fail "openssl could not read the JWK of $kid"
}

# Verifies the signature of token with the PEM public key using openssl
# dgst; ES256 signatures are converted from r || s to DER first. Returns
# openssl's status.
openssl_verify()
{
	local token=$1 pem=$2 alg sig_hex
	alg=$(auth_jwt_part "$token" 0 | jq -r .alg)
	printf '%s' "$(cut -d. -f1,2 <<<"$token")" >"$FA_TMP/input"
	sig_hex=$(b64url_hex "$(cut -d. -f3 <<<"$token")")
	if [[ $alg == ES256 ]]; then
		printf 'asn1 = SEQUENCE:sig\n[sig]\nr = INTEGER:0x%s\ns = INTEGER:0x%s\n' \
			"${sig_hex:0:64}" "${sig_hex:64:64}" >"$FA_TMP/sig.cnf"
		openssl asn1parse -genconf "$FA_TMP/sig.cnf" \
			-out "$FA_TMP/sig.bin" -noout >/dev/null
	else
		perl -e 'print pack("H*", $ARGV[0])' "$sig_hex" \
			>"$FA_TMP/sig.bin"
	fi
	openssl dgst -sha256 -verify "$pem" -signature "$FA_TMP/sig.bin" \
		"$FA_TMP/input" >/dev/null 2>&1
}

# --- A token from the stack's RS256 key verifies against its JWK.
auth_login "$user" "$AUTH_PASSWORD" 200
token0=$(auth_field access_token)
fa_expect_eq "$(auth_jwt_part "$token0" 0 | jq -r .kid)" "$stack_kid" \
	"kid of the first token"
jwk_to_pem "$stack_kid" "$FA_TMP/k0.pem"
cmp -s <(openssl pkey -pubin -in "$FA_TMP/k0.pem" -outform DER) \
	<(openssl pkey -in "$FLEETAUTH_SIGNING_KEY" -pubout -outform DER) ||
	fa_fail "JWK of $stack_kid is not the stack's public key"
openssl_verify "$token0" "$FA_TMP/k0.pem" ||
	fa_fail "openssl rejects the RS256 token with the JWKS key"
# The same check fails for a token whose payload was changed.
payload=$(auth_jwt_part "$token0" 1 | jq -c '.role = "system_admin"' |
	fa_b64url)
forged="$(cut -d. -f1 <<<"$token0").$payload.$(cut -d. -f3 <<<"$token0")"
! openssl_verify "$forged" "$FA_TMP/k0.pem" ||
	fa_fail "openssl accepts a token with a changed payload"

# --- Listing: operators only, and no private material.
fa_api_as "$token0" GET /v1/signing-keys
fa_expect_status 403 "key list as a driver"
fa_api GET /v1/signing-keys
fa_expect_status 200 "key list as the admin key"
fa_expect_eq "$(jq -c '[.items[] | keys] | add | unique' <<<"$FA_BODY")" \
	'["alg","created_at","kid","publish_until","status"]' "listed fields"
fa_expect_not_contains "$FA_BODY" "PRIVATE" "key list"

# --- Rotation to ES256: the previous key stays valid and published.
fa_api_as "$token0" POST /v1/signing-keys/rotate
fa_expect_status 403 "rotation by a driver"
fa_api POST /v1/signing-keys/rotate '{"alg": "HS256"}'
fa_expect_status 400 "rotation to HS256"
fa_api POST /v1/signing-keys/rotate '{"alg": "ES256", "size": 1}'
fa_expect_status 400 "rotation with an unknown field"
fa_api POST /v1/signing-keys/rotate '{"alg": "ES256"}'
fa_expect_status 200 "rotation to ES256"
kid1=$(jq -r .kid <<<"$FA_BODY")
fa_expect_eq "$(jq -r '.alg + " " + .status' <<<"$FA_BODY")" "ES256 current" \
	"new key"
fa_expect_eq "$(fa_current_kid)" "$kid1" "current kid after rotation"
fa_expect_eq "$(fa_sql "SELECT status || ' ' || (publish_until BETWEEN
	now() + interval '950 seconds' AND now() + interval '961 seconds')
	FROM signing_keys WHERE kid = '$stack_kid'")" "previous true" \
	"previous key published for access_token_ttl + 60 s"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM signing_keys WHERE kid = '$kid1'
	AND kek_id = 'dev-kek-1' AND position(convert_to('PRIVATE', 'UTF8')
	IN private_enc) = 0")" 1 "sealed private key of the new key"
fa_expect_eq "$(auth_get_status "$token0" /v1/mfa/device-keys)" 200 \
	"token of the previous key during the overlap"

auth_login "$user" "$AUTH_PASSWORD" 200
token1=$(auth_field access_token)
fa_expect_eq "$(auth_jwt_part "$token1" 0 | jq -c '[.alg, .kid, .typ]')" \
	"[\"ES256\",\"$kid1\",\"at+jwt\"]" "header of a token after rotation"
jwk_to_pem "$kid1" "$FA_TMP/k1.pem"
openssl_verify "$token1" "$FA_TMP/k1.pem" ||
	fa_fail "openssl rejects the ES256 token with the JWKS key"
! openssl_verify "$token1" "$FA_TMP/k0.pem" ||
	fa_fail "openssl accepts the ES256 token with the old RSA key"
fa_expect_eq "$(auth_get_status "$token1" /v1/mfa/device-keys)" 200 \
	"token of the new key"
fa_api_as "" GET /.well-known/jwks.json
fa_expect_eq "$(jq -r '[.keys[].kid] | sort | join(" ")' <<<"$FA_BODY")" \
	"$(printf '%s\n' "$stack_kid" "$kid1" | sort | paste -sd ' ')" \
	"JWKS during the overlap"

# --- After the overlap the old key is retired: out of the JWKS, and its
# tokens are rejected. The next rotation retires it.
fa_sql "UPDATE signing_keys SET publish_until = now() - interval '1 second'
	WHERE kid = '$stack_kid'"
fa_api POST /v1/signing-keys/rotate
fa_expect_status 200 "second rotation"
kid2=$(jq -r .kid <<<"$FA_BODY")
fa_expect_eq "$(jq -r .alg <<<"$FA_BODY")" ES256 "algorithm kept by default"
fa_expect_eq "$(fa_sql "SELECT status FROM signing_keys
	WHERE kid = '$stack_kid'")" retired "status of the expired key"
fa_api_as "" GET /.well-known/jwks.json
fa_expect_eq "$(jq -r '[.keys[].kid] | sort | join(" ")' <<<"$FA_BODY")" \
	"$(printf '%s\n' "$kid1" "$kid2" | sort | paste -sd ' ')" \
	"JWKS after the retirement"
fa_expect_eq "$(auth_get_status "$token0" /v1/mfa/device-keys)" 401 \
	"token of the retired key"
fa_expect_eq "$(auth_get_status "$token1" /v1/mfa/device-keys)" 200 \
	"token of the previous key after the second rotation"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM audit_events WHERE
	action = 'signing_key.rotate' AND outcome = 'success'
	AND target IN ('$kid1', '$kid2')")" 2 "audit of the rotations"

# --- A key created by another process (here the CLI) is used for the
# next token without a restart.
conf=$FLEETAUTH_STACK_DIR/fleetauthd.conf
out=$("$FLEETAUTHD" -c "$conf" signing-key generate --alg RS256 \
	2>"$FA_TMP/generate.err") ||
	fa_fail "signing-key generate failed"
kid3=${out%% *}
fa_expect_eq "$out" "$kid3 RS256" "output of signing-key generate"
auth_login "$user" "$AUTH_PASSWORD" 200
fa_expect_eq "$(auth_jwt_part "$(auth_field access_token)" 0 | jq -r .kid)" \
	"$kid3" "kid after a key change by another process"

# The CLI checks the key type of an import.
if "$FLEETAUTHD" -c "$conf" signing-key import --alg ES256 \
	--file "$FLEETAUTH_SIGNING_KEY" 2>"$FA_TMP/import.err"; then
	fa_fail "import of an RSA key as ES256 succeeded"
fi
fa_expect_contains "$(cat "$FA_TMP/import.err")" "P-256" "import error"
if "$FLEETAUTHD" -c "$conf" signing-key rotate 2>/dev/null; then
	fa_fail "unknown signing-key action succeeded"
fi

# The JWKS may be cached for a minute; token responses never.
jwks_headers=$(curl -s -D - -o /dev/null --max-time "$FA_CLIENT_TIMEOUT" \
	"$FLEETAUTH_URL/.well-known/jwks.json" | tr -d '\r')
fa_expect_contains "$jwks_headers" "Cache-Control: public, max-age=60" \
	"Cache-Control of the JWKS"
login_headers=$(curl -s -D - -o /dev/null --max-time "$FA_CLIENT_TIMEOUT" \
	-H 'Content-Type: application/json' \
	--data-binary '{"username":"jwks-nobody","password":"not-the-password-1"}' \
	"$FLEETAUTH_URL/v1/auth/login" | tr -d '\r')
fa_expect_contains "$login_headers" "Cache-Control: no-store" \
	"Cache-Control of a login response"
echo "PASS: $(basename "$0")"
