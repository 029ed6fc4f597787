# Helpers shared by the authentication tests: carriers and users made through
# the admin API, requests sent from a private loopback source address, and
# TOTP codes from oathtool.
#
#   . "$(dirname "$0")/common.sh"
#   auth_init "$@"

# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

# Password used for the test users; long enough for the policy.
AUTH_PASSWORD='correct horse battery staple 42'

# Loads the env file, checks the tools, and picks AUTH_RUN (a random suffix
# for ids) and AUTH_ADDRESS. AUTH_ADDRESS is a loopback source address of
# 127.0.0.0/8 used by this test alone, so that the per-address login
# throttle of one test does not affect the others.
auth_init()
{
	fa_load_env "$@"
	local tool
	for tool in curl jq openssl psql oathtool; do
		command -v "$tool" >/dev/null ||
			fa_skip "$tool is not installed"
	done
	AUTH_RUN=$(openssl rand -hex 4)
	auth_new_address
}

# Sets AUTH_ADDRESS to a fresh random address of 127.0.0.0/8 and removes
# its failure counter when the test exits.
auth_new_address()
{
	AUTH_ADDRESS=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1))
	AUTH_ADDRESS+=.$((RANDOM % 250 + 1))
	fa_on_exit "fa_sql \"DELETE FROM login_failures WHERE scope = 'address'
		AND key = '$AUTH_ADDRESS'\" >/dev/null"
}

# Sends a JSON POST from AUTH_ADDRESS (or $3) without credentials. Sets
# FA_STATUS, FA_BODY and FA_HEADERS.
auth_post()
{
	local path=$1 body=$2 source=${3:-$AUTH_ADDRESS}
	local out=$FA_TMP/auth-body headers=$FA_TMP/auth-headers
	FA_STATUS=$(curl -s -o "$out" -D "$headers" -w '%{http_code}' \
		--max-time "$FA_CLIENT_TIMEOUT" --interface "$source" \
		-X POST -H 'Content-Type: application/json' \
		--data-binary "$body" "$FLEETAUTH_URL$path") || FA_STATUS=000
	FA_BODY=$(cat "$out" 2>/dev/null || true)
	FA_HEADERS=$(tr -d '\r' <"$headers" 2>/dev/null || true)
	rm -f "$out" "$headers"
}

# Prints the value of response header name from the last auth_post.
auth_header()
{
	awk -v name="$1" -F': ' 'tolower($1) == tolower(name) { print $2 }' \
		<<<"$FA_HEADERS"
}

# Prints field of the JSON in FA_BODY; fails when it is missing.
auth_field()
{
	local value
	value=$(jq -r --arg f "$1" '.[$f] // empty' <<<"$FA_BODY")
	[[ -n $value ]] || fa_fail "response has no $1: $FA_BODY"
	printf '%s\n' "$value"
}

# Creates carrier NAME-AUTH_RUN and prints its id.
auth_carrier()
{
	local id="$1-$AUTH_RUN"
	fa_api POST /v1/carriers "$(jq -cn --arg id "$id" \
		'{id: $id, name: ("Carrier " + $id)}')"
	fa_expect_status 201 "create carrier $id"
	printf '%s\n' "$id"
}

# Creates user NAME-AUTH_RUN with role, carrier ('' for none) and password
# (default AUTH_PASSWORD) through the API, and prints the id.
auth_user()
{
	local id="$1-$AUTH_RUN" role=$2 carrier=$3
	local password=${4:-$AUTH_PASSWORD}
	fa_api POST /v1/users "$(jq -cn --arg u "$id" --arg p "$password" \
		--arg r "$role" --arg c "$carrier" \
		'{username: $u, password: $p, role: $r}
		 + (if $c == "" then {} else {carrier: $c} end)')"
	fa_expect_status 201 "create user $id"
	printf '%s\n' "$id"
}

# Logs in and expects status; the response stays in FA_BODY.
auth_login()
{
	local user=$1 password=$2 expected=$3
	auth_post /v1/auth/login "$(jq -cn --arg u "$user" --arg p "$password" \
		'{username: $u, password: $p}')"
	fa_expect_status "$expected" "login of $user"
}

# Prints the decoded JSON of part (0 header, 1 payload) of a JWT.
auth_jwt_part()
{
	local part
	part=$(cut -d. -f"$(($2 + 1))" <<<"$1" | tr '_-' '/+')
	while ((${#part} % 4)); do part+='='; done
	openssl base64 -d -A <<<"$part"
}

# Sends GET path with a bearer credential and prints the HTTP status.
auth_get_status()
{
	curl -s -o /dev/null -w '%{http_code}' --max-time "$FA_CLIENT_TIMEOUT" \
		-H "Authorization: Bearer $1" "$FLEETAUTH_URL$2" || echo 000
}

# Prints the TOTP code of base32 secret for time now + offset seconds.
auth_totp()
{
	local secret=$1 offset=${2:-0}
	oathtool --totp -b -N "@$(($(date +%s) + offset))" "$secret"
}

# Counts audit events with action and outcome for target since id after.
auth_audit_count()
{
	local action=$1 target=$2 outcome=$3 after=${4:-0}
	fa_sql "SELECT count(*) FROM audit_events WHERE action = '$action'
		AND target = '$target' AND outcome = '$outcome' AND id > $after"
}

auth_audit_last_id()
{
	fa_sql "SELECT coalesce(max(id), 0) FROM audit_events"
}
