# shellcheck shell=bash disable=SC2034 # globals read by the sourcing test
# Helpers shared by the fleetauthd core tests. Source after lib.sh and
# fa_load_env. Every object a test creates carries the random suffix $SFX,
# so that the tests can run again and again against one stack.

SFX=$(openssl rand -hex 4)

# Sends a request with full control over the headers: credential (may be
# empty), method, path, then curl arguments. Sets FA_STATUS, FA_BODY and
# FA_HEADERS.
raw_api()
{
	local credential=$1 method=$2 path=$3
	shift 3
	local out=$FA_TMP/raw-body headers=$FA_TMP/raw-headers args
	args=(-s -o "$out" -D "$headers" -w '%{http_code}'
		--max-time "$FA_CLIENT_TIMEOUT" -X "$method")
	if [[ -n $credential ]]; then
		args+=(-H "Authorization: Bearer $credential")
	fi
	FA_STATUS=$(curl "${args[@]}" "$@" "$FLEETAUTH_URL$path") ||
		FA_STATUS=000
	FA_BODY=$(cat "$out" 2>/dev/null || true)
	FA_HEADERS=$(cat "$headers" 2>/dev/null || true)
	rm -f "$out" "$headers"
}

# Fails unless the last response is a problem with the given status and
# type slug (for example invalid-field).
expect_problem()
{
	local status=$1 slug=$2 what=$3 type body_status
	fa_expect_status "$status" "$what"
	type=$(jq -r '.type // empty' <<<"$FA_BODY" 2>/dev/null || true)
	fa_expect_eq "$type" "https://fleetauth.dev/problems/$slug" \
		"$what: problem type"
	body_status=$(jq -r '.status // empty' <<<"$FA_BODY")
	fa_expect_eq "$body_status" "$status" "$what: status in the body"
}

# Prints one field of the last JSON response.
body_field()
{
	jq -r "$1" <<<"$FA_BODY"
}

create_carrier()
{
	local id=$1
	fa_api POST /v1/carriers "$(jq -cn --arg id "$id" \
		'{id: $id, name: ("Carrier " + $id)}')"
	fa_expect_status 201 "create carrier $id"
}

# Creates a user as the stack administrator; carrier may be empty.
create_user()
{
	local id=$1 role=$2 carrier=${3-}
	fa_api POST /v1/users "$(jq -cn --arg id "$id" --arg role "$role" \
		--arg carrier "$carrier" \
		'{username: $id, password: "long enough passphrase 42",
		  role: $role}
		 + (if $carrier == "" then {} else {carrier: $carrier} end)')"
	fa_expect_status 201 "create user $id ($role)"
}

# Prints an access token for an existing user, signed with the stack's key.
token_for()
{
	local id=$1 role=$2 carrier=${3-} extra=${4:-'{}'}
	fa_mint_token "$(fa_claims "$id" "$role" "$carrier" 900 "$extra")"
}
