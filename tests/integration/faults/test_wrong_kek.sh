#!/usr/bin/env bash
# fleetauthd started with a well-formed key-encryption key that is not the
# one the secrets were sealed with. It cannot open the token-signing key,
# so it must either exit at start with an error that names kek_file, or
# report not ready on /readyz and hand out no tokens. Runs a second
# fleetauthd on a copy of the shared stack's configuration.
set -euo pipefail
. "$(dirname "$0")/common.sh"
faults_init "$@"

dir=$FA_TMP/keys
mkdir -m 0700 "$dir"
user=kek-$FAULTS_RUN
fa_api POST /v1/carriers "$(jq -cn --arg id "kc-$FAULTS_RUN" \
	'{id: $id, name: "Key test carrier"}')"
fa_expect_status 201 "create carrier kc-$FAULTS_RUN"
fa_api POST /v1/users "$(jq -cn --arg u "$user" --arg c "kc-$FAULTS_RUN" \
	--arg p "$FAULTS_PASSWORD" \
	'{username: $u, password: $p, role: "driver", carrier: $c}')"
fa_expect_status 201 "create user $user"
openssl rand -hex 32 | tr -d '\n' >"$dir/other.hex"
chmod 0600 "$dir/other.hex"
port=$(fa_free_port)
sed -e "s|^kek_file = .*|kek_file = $dir/other.hex|" \
	-e "s|^listen_port = .*|listen_port = $port|" \
	"$FLEETAUTHD_CONFIG" >"$dir/other.conf"
chmod 0600 "$dir/other.conf"
"$FLEETAUTHD" -c "$dir/other.conf" serve >"$dir/other.out" 2>&1 &
other_pid=$!
fa_on_exit "kill $other_pid 2>/dev/null"
fa_wait_for "[[ \$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
	http://127.0.0.1:$port/healthz) == 200 ]] ||
	! kill -0 $other_pid 2>/dev/null" 20
if ! kill -0 "$other_pid" 2>/dev/null; then
	rc=0
	wait "$other_pid" || rc=$?
	fa_expect_ne "$rc" 0 "exit code of fleetauthd with the wrong KEK"
	fa_expect_contains "$(cat "$dir/other.out")" "$dir/other.hex" \
		"error output of fleetauthd with the wrong KEK"
	fa_log "wrong KEK: fleetauthd exited $rc at start"
	fa_log "ok"
	exit 0
fi
status=$(curl -s -o "$dir/login.out" -w '%{http_code}' --max-time 15 \
	-X POST -H 'Content-Type: application/json' \
	--data-binary "$(jq -cn --arg u "$user" --arg p "$FAULTS_PASSWORD" \
		'{username: $u, password: $p}')" \
	"http://127.0.0.1:$port/v1/auth/login") || status=000
fa_log "wrong KEK: fleetauthd serves; login returns $status:" \
	"$(head -c 200 "$dir/login.out")"
[[ $status == 5?? ]] ||
	fa_fail "login with the wrong KEK: expected a 5xx problem, got" \
		"$status: $(cat "$dir/login.out")"
kill -0 "$other_pid" 2>/dev/null ||
	fa_fail "fleetauthd exited during the login: $(tail -n 3 \
		"$dir/other.out")"
ready=$(curl -s -o "$dir/ready.out" -w '%{http_code}' --max-time 5 \
	"http://127.0.0.1:$port/readyz") || ready=000
fa_expect_eq "$ready" 503 "GET /readyz with a KEK that opens no signing" \
	"key (body $(head -c 200 "$dir/ready.out"))"
fa_log "ok"
fa_log "ok"
