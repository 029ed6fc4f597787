#!/usr/bin/env bash
# fleetauthd started with a missing, corrupt, truncated or world-readable
# key-encryption key file must exit non-zero at once with an error that
# names the file, and must not start serving. Runs on copies of the shared
# stack's configuration and touches nothing of the running stack.
# test_wrong_kek.sh covers a valid key that opens none of the secrets.
set -euo pipefail
. "$(dirname "$0")/common.sh"
faults_init "$@"

dir=$FA_TMP/keys
mkdir -m 0700 "$dir"
good=$(cat "$FLEETAUTH_STACK_DIR/pki/kek.hex")

# Runs fleetauthd serve with kek_file set to path on a free port; fails
# unless it exits non-zero within 20 s and names path on stderr.
expect_start_failure()
{
	local what=$1 path=$2 conf=$dir/fleetauthd.conf port rc=0
	port=$(fa_free_port)
	sed -e "s|^kek_file = .*|kek_file = $path|" \
		-e "s|^listen_port = .*|listen_port = $port|" \
		"$FLEETAUTHD_CONFIG" >"$conf"
	chmod 0600 "$conf"
	timeout 20 "$FLEETAUTHD" -c "$conf" serve >"$dir/out" 2>"$dir/err" ||
		rc=$?
	fa_expect_ne "$rc" 0 "exit code of fleetauthd with $what"
	fa_expect_ne "$rc" 124 "exit code of fleetauthd with $what (124:" \
		"it kept running)"
	fa_expect_contains "$(cat "$dir/err")" "$path" \
		"error output of fleetauthd with $what"
	fa_log "$what: exit $rc: $(head -n 1 "$dir/err")"
}

expect_start_failure "a missing key file" "$dir/missing.hex"

printf 'not a key at all' >"$dir/garbage.hex"
chmod 0600 "$dir/garbage.hex"
expect_start_failure "a key file of text" "$dir/garbage.hex"

printf '%s' "${good:0:63}" >"$dir/short.hex"
chmod 0600 "$dir/short.hex"
expect_start_failure "a key file one digit short" "$dir/short.hex"

printf '%s00' "$good" >"$dir/long.hex"
chmod 0600 "$dir/long.hex"
expect_start_failure "a key file with extra digits" "$dir/long.hex"

: >"$dir/empty.hex"
chmod 0600 "$dir/empty.hex"
expect_start_failure "an empty key file" "$dir/empty.hex"

printf '%s' "$good" >"$dir/open.hex"
chmod 0644 "$dir/open.hex"
expect_start_failure "a key file readable by others" "$dir/open.hex"

fa_log "ok"
