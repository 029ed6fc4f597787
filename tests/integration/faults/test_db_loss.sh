#!/usr/bin/env bash
# PostgreSQL crashes (pg_ctl stop -m immediate) while clients log in and
# refresh. fleetauthd must reply 503 problems, never 500, and never hang.
# No refresh family may be left half-written, and the service must work
# again once the database is back.
set -euo pipefail
. "$(dirname "$0")/common.sh"
faults_init "$@"
faults_private_stack

readonly WORKERS=8
user=$(faults_user drv)
refresh=$(faults_login "$user")

# Each worker logs in and refreshes in a loop and writes one line per
# request: "login STATUS TYPE" or "refresh STATUS TYPE". A worker without a
# refresh token (none yet, or its last one was refused) logs in first.
worker()
{
	local n=$1
	local out=$FA_TMP/worker-$n.txt token=
	local deadline=$((SECONDS + 12))
	while ((SECONDS < deadline)); do
		faults_post /v1/auth/login "$(jq -cn --arg u "$user" \
			--arg p "$FAULTS_PASSWORD" \
			'{username: $u, password: $p}')"
		printf 'login %s %s\n' "$FA_STATUS" "$FAULTS_TYPE" >>"$out"
		if [[ -z $token && $FA_STATUS == 200 ]]; then
			token=$(jq -r .refresh_token <<<"$FA_BODY")
		fi
		[[ -n $token ]] || continue
		faults_post /v1/auth/refresh "$(jq -cn --arg t "$token" \
			'{refresh_token: $t}')"
		printf 'refresh %s %s\n' "$FA_STATUS" "$FAULTS_TYPE" >>"$out"
		if [[ $FA_STATUS == 200 ]]; then
			token=$(jq -r .refresh_token <<<"$FA_BODY")
		elif [[ $FA_STATUS == 401 ]]; then
			# Refused, for example because the rotation committed
			# but the reply was lost: start a new family.
			token=
		fi
	done
}

pids=()
for n in $(seq 1 "$WORKERS"); do
	worker "$n" &
	pids+=("$!")
	fa_on_exit "kill $! 2>/dev/null"
done
sleep 3
faults_kill_postgres
down_at=$SECONDS
fa_log "PostgreSQL killed"

# While the database is down: 503 with a problem body, within the timeout.
faults_post /v1/auth/login "$(jq -cn --arg u "$user" \
	--arg p "$FAULTS_PASSWORD" '{username: $u, password: $p}')"
fa_expect_eq "$FA_STATUS" 503 "login status while the database is down"
fa_expect_eq "$FAULTS_TYPE" application/problem+json \
	"content type of the 503 login reply"
faults_post /v1/auth/refresh "$(jq -cn --arg t "$refresh" \
	'{refresh_token: $t}')"
fa_expect_eq "$FA_STATUS" 503 "refresh status while the database is down"
fa_expect_contains "$FA_BODY" "problems/unavailable" \
	"503 refresh body (content type $FAULTS_TYPE)"
ready=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
	"$FLEETAUTH_URL/readyz") || ready=000
fa_expect_eq "$ready" 503 "GET /readyz while the database is down"

sleep 4
faults_start_postgres
fa_log "PostgreSQL back after $((SECONDS - down_at)) s"
for pid in "${pids[@]}"; do
	wait "$pid" || true
done

# Every reply was one of 200, 401, 503 and none timed out.
cat "$FA_TMP"/worker-*.txt >"$FA_TMP/all.txt"
fa_log "replies: $(awk '{ print $1, $2 }' "$FA_TMP/all.txt" | sort |
	uniq -c | tr -s ' \n' ' ')"
if grep -Ev '^(login|refresh) (200|401|503) ' "$FA_TMP/all.txt" |
	grep -q .; then
	fa_fail "unexpected replies during the database loss:" \
		"$(grep -Ev '^(login|refresh) (200|401|503) ' \
			"$FA_TMP/all.txt" | sort | uniq -c | head -n 5)"
fi
grep -q '^login 503 application/problem+json' "$FA_TMP/all.txt" ||
	fa_fail "no worker saw a 503 problem reply during the database loss"

# The service recovers: readiness, login and the refresh token taken
# before the crash.
fa_wait_for "[[ \$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
	'$FLEETAUTH_URL/readyz') == 200 ]]" 30
faults_post /v1/auth/refresh "$(jq -cn --arg t "$refresh" \
	'{refresh_token: $t}')"
fa_expect_eq "$FA_STATUS" 200 "refresh with the pre-crash token: $FA_BODY"
faults_login "$user" >/dev/null
faults_check_families
fa_log "ok"
