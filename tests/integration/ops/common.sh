# Helpers shared by the operations tests: users and carriers made through
# the admin API, logins from a private loopback source address, TOTP codes
# from oathtool, and a second fleetauthd started from a changed copy of the
# stack's configuration.
#
#   . "$(dirname "$0")/common.sh"
#   ops_init "$@"

# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

OPS_PASSWORD='correct horse battery staple 42'

# Loads the env file, checks the tools and picks OPS_RUN (a random suffix
# for ids) and OPS_ADDRESS, a 127.0.0.0/8 source address for this test's
# logins so that the per-address login throttle of other tests stays apart.
ops_init()
{
	fa_load_env "$@"
	local tool
	for tool in curl jq openssl psql oathtool mosquitto_pub; do
		command -v "$tool" >/dev/null ||
			fa_skip "$tool is not installed"
	done
	OPS_RUN=$(openssl rand -hex 4)
	OPS_ADDRESS=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1))
	OPS_ADDRESS+=.$((RANDOM % 250 + 1))
	fa_on_exit "fa_sql \"DELETE FROM login_failures WHERE scope = 'address'
		AND key = '$OPS_ADDRESS'\" >/dev/null"
}

# Creates carrier NAME-OPS_RUN and prints its id.
ops_carrier()
{
	local id="$1-$OPS_RUN"
	fa_api POST /v1/carriers "$(jq -cn --arg id "$id" \
		'{id: $id, name: ("Carrier " + $id)}')"
	fa_expect_status 201 "create carrier $id"
	printf '%s\n' "$id"
}

# Creates user NAME-OPS_RUN with role and carrier ('' for none) and prints
# the id.
ops_user()
{
	local id="$1-$OPS_RUN" role=$2 carrier=$3
	fa_api POST /v1/users "$(jq -cn --arg u "$id" --arg p "$OPS_PASSWORD" \
		--arg r "$role" --arg c "$carrier" \
		'{username: $u, password: $p, role: $r}
		 + (if $c == "" then {} else {carrier: $c} end)')"
	fa_expect_status 201 "create user $id"
	printf '%s\n' "$id"
}

# Sends a JSON POST without credentials from OPS_ADDRESS to the service at
# url (default FLEETAUTH_URL). Sets FA_STATUS and FA_BODY.
ops_post()
{
	local path=$1 body=$2 url=${3:-$FLEETAUTH_URL}
	local out=$FA_TMP/ops-body
	FA_STATUS=$(curl -s -o "$out" -w '%{http_code}' \
		--max-time "$FA_CLIENT_TIMEOUT" --interface "$OPS_ADDRESS" \
		-X POST -H 'Content-Type: application/json' \
		--data-binary "$body" "$url$path") || FA_STATUS=000
	FA_BODY=$(cat "$out" 2>/dev/null || true)
	rm -f "$out"
}

# Logs user in with OPS_PASSWORD at url (default FLEETAUTH_URL) and prints
# the access token; fails unless the login returns tokens.
ops_login()
{
	local user=$1 url=${2:-$FLEETAUTH_URL} token
	ops_post /v1/auth/login "$(jq -cn --arg u "$user" \
		--arg p "$OPS_PASSWORD" '{username: $u, password: $p}')" "$url"
	fa_expect_status 200 "login of $user"
	token=$(jq -r '.access_token // empty' <<<"$FA_BODY")
	[[ -n $token ]] || fa_fail "login of $user returned no token: $FA_BODY"
	printf '%s\n' "$token"
}

# Prints the TOTP code of base32 secret for time now + offset seconds.
ops_totp()
{
	oathtool --totp -b -N "@$(($(date +%s) + ${2:-0}))" "$1"
}

# Prints the decoded JSON of part (0 header, 1 payload) of a JWT.
ops_jwt_part()
{
	local part
	part=$(cut -d. -f"$(($2 + 1))" <<<"$1" | tr '_-' '/+')
	while ((${#part} % 4)); do part+='='; done
	openssl base64 -d -A <<<"$part"
}

# Sends GET path with a bearer credential to url (default FLEETAUTH_URL)
# and prints the HTTP status.
ops_get_status()
{
	curl -s -o /dev/null -w '%{http_code}' --max-time "$FA_CLIENT_TIMEOUT" \
		-H "Authorization: Bearer $1" "${3:-$FLEETAUTH_URL}$2" ||
		echo 000
}

# Writes a copy of the stack's fleetauthd.conf to file with option=value
# pairs replaced or added; an empty value removes the option.
ops_config()
{
	local file=$1 pair name value
	shift
	cp "$FLEETAUTH_STACK_DIR/fleetauthd.conf" "$file"
	chmod 0600 "$file"
	for pair in "$@"; do
		name=${pair%%=*}
		value=${pair#*=}
		sed -i "/^$name[[:space:]]*=/d" "$file"
		[[ -z $value ]] || printf '%s = %s\n' "$name" "$value" >>"$file"
	done
}

# Starts "fleetauthd serve" with config file on a free port and waits for
# /healthz. Sets OPS_SERVICE_URL; the process is stopped at exit.
ops_start_service()
{
	local config=$1 port pid
	port=$(fa_free_port)
	sed -i '/^listen_port[[:space:]]*=/d' "$config"
	printf 'listen_port = %s\n' "$port" >>"$config"
	"$FLEETAUTHD" -c "$config" serve \
		>"$FA_TMP/fleetauthd-$port.log" 2>&1 </dev/null &
	pid=$!
	fa_on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
	OPS_SERVICE_URL=http://127.0.0.1:$port
	fa_wait_for "curl -sf --max-time 2 '$OPS_SERVICE_URL/healthz' \
		>/dev/null || { fa_pid_running $pid ||
		fa_fail \"fleetauthd exited: \$(tail -5 '$FA_TMP/fleetauthd-$port.log')\"; false; }" 20
}
