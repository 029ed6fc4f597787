# shellcheck shell=bash
# Helpers for the fault tests. Each test that stops a process starts its own
# stack with tools/stack in a temporary directory and tears it down on exit,
# so the shared stack stays healthy for the tests that run after it.
#
#   . "$(dirname "$0")/common.sh"
#   faults_init "$@"          # shared env, tool checks
#   faults_private_stack      # private stack; replaces the env variables

# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

FAULTS_PASSWORD='correct horse battery staple 42'
PG_BINDIR=${FLEETAUTH_PG_BINDIR:-/usr/lib/postgresql/15/bin}

faults_init()
{
	fa_load_env "$@"
	local tool
	for tool in curl jq openssl psql sha256sum mosquitto_pub \
		mosquitto_sub; do
		command -v "$tool" >/dev/null ||
			fa_skip "$tool is not installed"
	done
	FAULTS_RUN=$(openssl rand -hex 4)
}

# Starts a stack in FA_TMP/stack from the same build and sources its env
# file. The stack is stopped when the test exits.
faults_private_stack()
{
	local dir=$FA_TMP/stack
	FAULTS_STACK=$dir
	fa_on_exit "'$FLEETAUTH_SOURCE_DIR/tools/stack' down '$dir' \
		>'$FA_TMP/stack-down.log' 2>&1"
	"$FLEETAUTH_SOURCE_DIR/tools/stack" up "$dir" --fast-bcrypt \
		--build "$FLEETAUTH_BUILD_DIR" >"$FA_TMP/stack-up.log" 2>&1 ||
		fa_fail "tools/stack up failed: $(tail -n 15 "$FA_TMP/stack-up.log")"
	# shellcheck disable=SC1090,SC1091
	. "$dir/env"
}

# Prints a key of the private stack's state file.
faults_state()
{
	sed -n "s/^$1=//p" "$FAULTS_STACK/state" | tail -n 1
}

as_postgres()
{
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# Stops the private stack's PostgreSQL at once, like a crash.
faults_kill_postgres()
{
	as_postgres "$PG_BINDIR/pg_ctl" stop -D "$(faults_state pg_root)/data" \
		-m immediate -w -t 15 >/dev/null 2>&1 ||
		fa_fail "pg_ctl stop -m immediate failed for" \
			"$(faults_state pg_root)/data"
}

faults_start_postgres()
{
	"$FLEETAUTH_SOURCE_DIR/tools/stack" restart-db "$FAULTS_STACK" \
		>>"$FA_TMP/stack-up.log" 2>&1 ||
		fa_fail "tools/stack restart-db failed: $(tail -n 5 \
			"$FA_TMP/stack-up.log")"
}

# Prints the recorded pid of a stack process (fleetauthd, broker-1).
faults_pid()
{
	awk -v name="$1" '$1 == name { pid = $2 } END { print pid }' \
		"$FAULTS_STACK/pids"
}

# Starts fleetauthd the way tools/stack does (setsid, same config and log)
# and waits until GET /healthz returns 200. Sets FAULTS_FLEETAUTHD_PID; the
# process is stopped when the test exits, because tools/stack down only
# stops the processes it started itself.
faults_start_fleetauthd()
{
	setsid "$FLEETAUTHD" -c "$FLEETAUTHD_CONFIG" serve </dev/null \
		>>"$FAULTS_STACK/logs/fleetauthd.log" 2>&1 &
	FAULTS_FLEETAUTHD_PID=$!
	fa_on_exit "kill $FAULTS_FLEETAUTHD_PID 2>/dev/null"
	fa_wait_for "[[ \$(curl -s -o /dev/null -w '%{http_code}' \
		--max-time 2 '$FLEETAUTH_URL/healthz') == 200 ]]" 20
}

# Sends a JSON request without credentials; sets FA_STATUS, FA_BODY and
# FAULTS_TYPE (the Content-Type of the response). Safe to run in several
# background jobs at once: each call has its own temporary file.
faults_post()
{
	local path=$1 body=$2 out
	local result
	out=$(mktemp "$FA_TMP/post.XXXXXX")
	result=$(curl -s -o "$out" -w '%{http_code} %{content_type}' \
		--max-time "${FAULTS_HTTP_TIMEOUT:-15}" -X POST \
		-H 'Content-Type: application/json' --data-binary "$body" \
		"$FLEETAUTH_URL$path") || result="000 -"
	FA_STATUS=${result%% *}
	FAULTS_TYPE=${result#* }
	FA_BODY=$(cat "$out" 2>/dev/null || true)
	rm -f "$out"
}

# Creates driver user $1-FAULTS_RUN in carrier fc-FAULTS_RUN (created on
# first use); prints the user id.
faults_user()
{
	local carrier=fc-$FAULTS_RUN user=$1-$FAULTS_RUN
	fa_api GET "/v1/carriers/$carrier"
	if [[ $FA_STATUS != 200 ]]; then
		fa_api POST /v1/carriers "$(jq -cn --arg id "$carrier" \
			'{id: $id, name: "Fault test carrier"}')"
		fa_expect_status 201 "create carrier $carrier"
	fi
	fa_api POST /v1/users "$(jq -cn --arg u "$user" --arg c "$carrier" \
		--arg p "$FAULTS_PASSWORD" \
		'{username: $u, password: $p, role: "driver", carrier: $c}')"
	fa_expect_status 201 "create user $user"
	printf '%s\n' "$user"
}

# Logs user in; prints the refresh token.
faults_login()
{
	faults_post /v1/auth/login "$(jq -cn --arg u "$1" \
		--arg p "$FAULTS_PASSWORD" '{username: $u, password: $p}')"
	[[ $FA_STATUS == 200 ]] ||
		fa_fail "login of $1: expected 200, got $FA_STATUS: $FA_BODY"
	jq -r .refresh_token <<<"$FA_BODY"
}

# Checks the refresh-token tables: every family has at least one token and
# at most one token that has not been rotated.
faults_check_families()
{
	local bad
	bad=$(fa_sql "SELECT f.id, count(t.token_hash),
		count(t.token_hash) FILTER (WHERE t.rotated_at IS NULL)
		FROM refresh_families f
		LEFT JOIN refresh_tokens t ON t.family_id = f.id
		GROUP BY f.id
		HAVING count(t.token_hash) = 0 OR
		count(t.token_hash) FILTER (WHERE t.rotated_at IS NULL) > 1")
	[[ -z $bad ]] ||
		fa_fail "refresh families with no token or with more than one" \
			"live token (family|tokens|live): $bad"
}
