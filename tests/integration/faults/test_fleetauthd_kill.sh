#!/usr/bin/env bash
# fleetauthd is killed with SIGKILL while 20 clients rotate their refresh
# tokens as fast as they can. Afterwards, for every client:
#
# - a client whose last refresh got its reply has a token that works once;
# - a client whose last refresh got no reply (the request was in flight)
#   presents the token it sent. It either works once (the rotation did not
#   commit) or is refused as reused (it committed), which revokes the family
#   and sends the user back to the login. It never works twice.
#
# In the database every family keeps at least one token and at most one
# token that has not been rotated: no refresh token ever has two successors.
set -euo pipefail
. "$(dirname "$0")/common.sh"
faults_init "$@"
faults_private_stack

readonly CLIENTS=20
user=$(faults_user drv)

# Each client logs in, then refreshes in a loop. Its state file contains the
# last token that the service handed out, and "in-flight" while a refresh
# with that token has no reply yet.
client()
{
	local n=$1
	local state=$FA_TMP/client-$n token
	token=$(faults_login "$user")
	printf 'idle %s\n' "$token" >"$state"
	while :; do
		printf 'in-flight %s\n' "$token" >"$state"
		faults_post /v1/auth/refresh "$(jq -cn --arg t "$token" \
			'{refresh_token: $t}')"
		case $FA_STATUS in
		200)
			token=$(jq -r .refresh_token <<<"$FA_BODY")
			printf 'idle %s\n' "$token" >"$state"
			;;
		000) return 0 ;;
		*)
			printf 'error %s %s\n' "$FA_STATUS" "$FA_BODY" \
				>"$state"
			return 0
			;;
		esac
	done
}

pids=()
for n in $(seq 1 "$CLIENTS"); do
	client "$n" &
	pids+=("$!")
	fa_on_exit "kill $! 2>/dev/null"
done
# Kill once the clients are rotating: at least two rotations per client.
fa_wait_for "(( \$(fa_sql 'SELECT count(*) FROM refresh_tokens
	WHERE rotated_at IS NOT NULL') >= 2 * CLIENTS ))" 60
rotations=$(fa_sql "SELECT count(*) FROM refresh_tokens
	WHERE rotated_at IS NOT NULL")
kill -KILL "$(faults_pid fleetauthd)"
fa_log "fleetauthd killed after $rotations rotations"
for pid in "${pids[@]}"; do
	wait "$pid" || true
done
faults_start_fleetauthd

in_flight=0
committed=0
for n in $(seq 1 "$CLIENTS"); do
	read -r kind token rest <"$FA_TMP/client-$n"
	[[ $kind == idle || $kind == in-flight ]] ||
		fa_fail "client $n failed before the kill: $token $rest"
	body=$(jq -cn --arg t "$token" '{refresh_token: $t}')
	faults_post /v1/auth/refresh "$body"
	first=$FA_STATUS
	if [[ $kind == idle ]]; then
		fa_expect_eq "$first" 200 \
			"client $n: refresh with a token whose reply arrived"
	else
		in_flight=$((in_flight + 1))
		[[ $first == 200 || $first == 401 ]] ||
			fa_fail "client $n: refresh with the in-flight token:" \
				"expected 200 or 401, got $first: $FA_BODY"
		[[ $first == 200 ]] || committed=$((committed + 1))
	fi
	if [[ $first == 200 ]]; then
		next=$(jq -r .refresh_token <<<"$FA_BODY")
		faults_post /v1/auth/refresh "$body"
		fa_expect_eq "$FA_STATUS" 401 \
			"client $n: the same token a second time"
		# Reuse revokes the family, so its newest token stops too.
		faults_post /v1/auth/refresh "$(jq -cn --arg t "$next" \
			'{refresh_token: $t}')"
		fa_expect_eq "$FA_STATUS" 401 \
			"client $n: successor after the reuse was detected"
	fi
done
fa_log "$in_flight of $CLIENTS clients had a refresh in flight at the" \
	"kill; $committed of those had committed before it"
faults_check_families
fa_log "ok"
