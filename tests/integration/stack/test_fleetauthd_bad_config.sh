#!/usr/bin/env bash
# fleetauthd refuses a bad configuration at start: it exits non-zero, soon,
# with a message that names the option or the file, and without printing the
# database password.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"

base=$FA_TMP/base.conf
port=$(fa_free_port)
# The stack's own configuration on a free port: valid, so each case below
# changes exactly one thing.
sed "s/^listen_port = .*/listen_port = $port/" "$FLEETAUTHD_CONFIG" >"$base"
chmod 0600 "$base"
database_password=$(sed -n 's/.*password=\([^ ]*\).*/\1/p' "$base")
[[ -n $database_password ]] || fa_fail "no password in database_url of $base"

# Writes base with option set to value (appended when absent) to file.
config_with()
{
	local file=$1 option=$2 value=$3
	if grep -q "^$option = " "$base"; then
		sed "s|^$option = .*|$option = $value|" "$base" >"$file"
	else
		{ cat "$base"; printf '%s = %s\n' "$option" "$value"; } >"$file"
	fi
	chmod 0600 "$file"
}

# Runs fleetauthd with config file and command; fails unless it exits
# non-zero within 15 s with every expected string in its output.
expect_rejected()
{
	local what=$1 config=$2 command=$3
	shift 3
	local rc=0 output
	timeout 15 "$FLEETAUTHD" -c "$config" "$command" \
		>"$FA_TMP/out" 2>&1 </dev/null || rc=$?
	output=$(cat "$FA_TMP/out")
	[[ $rc -ne 124 ]] || fa_fail "$what: fleetauthd $command still ran" \
		"after 15 s"
	fa_expect_ne "$rc" 0 "$what: exit code of fleetauthd $command"
	local needle
	for needle in "$@"; do
		fa_expect_contains "$output" "$needle" "$what: message"
	done
	fa_expect_not_contains "$output" "$database_password" \
		"$what: message leaks the database password"
	[[ -z $(ss -Hltn "sport = :$port") ]] ||
		fa_fail "$what: fleetauthd left port $port listening"
}

# The base configuration itself is accepted (so the cases below fail for
# their one change): migrate is idempotent.
timeout 60 "$FLEETAUTHD" -c "$base" migrate >"$FA_TMP/out" 2>&1 ||
	fa_fail "fleetauthd migrate with the stack's configuration failed:" \
		"$(tail -n 5 "$FA_TMP/out")"

printf 'no_such_option = 1\n' | cat "$base" - >"$FA_TMP/unknown.conf"
chmod 0600 "$FA_TMP/unknown.conf"
expect_rejected "unknown option" "$FA_TMP/unknown.conf" serve no_such_option
expect_rejected "unknown option" "$FA_TMP/unknown.conf" migrate \
	no_such_option

config_with "$FA_TMP/port-range.conf" listen_port 99999
expect_rejected "listen_port out of range" "$FA_TMP/port-range.conf" serve \
	listen_port 99999

config_with "$FA_TMP/port-text.conf" listen_port eighty
expect_rejected "listen_port not a number" "$FA_TMP/port-text.conf" serve \
	listen_port

config_with "$FA_TMP/cost.conf" bcrypt_cost 99
expect_rejected "bcrypt_cost out of range" "$FA_TMP/cost.conf" serve \
	bcrypt_cost

missing=$FA_TMP/no-such-dir/kek.hex
config_with "$FA_TMP/kek-missing.conf" kek_file "$missing"
expect_rejected "missing kek_file" "$FA_TMP/kek-missing.conf" serve \
	"$missing"

config_with "$FA_TMP/kek-dir.conf" kek_file "$FA_TMP"
expect_rejected "kek_file is a directory" "$FA_TMP/kek-dir.conf" serve \
	"$FA_TMP"

short=$FA_TMP/short-kek.hex
printf '0123456789abcdef' >"$short"
chmod 0600 "$short"
config_with "$FA_TMP/kek-short.conf" kek_file "$short"
expect_rejected "kek_file too short" "$FA_TMP/kek-short.conf" serve "$short"

open=$FA_TMP/open-kek.hex
cp "$FLEETAUTH_STACK_DIR/pki/kek.hex" "$open"
chmod 0644 "$open"
config_with "$FA_TMP/kek-open.conf" kek_file "$open"
expect_rejected "kek_file readable by others" "$FA_TMP/kek-open.conf" serve \
	"$open"

if [[ $(id -u) -ne 0 ]]; then
	# Root reads a mode 000 file anyway, so this case runs only as a
	# regular user.
	locked=$FA_TMP/locked-kek.hex
	cp "$FLEETAUTH_STACK_DIR/pki/kek.hex" "$locked"
	chmod 0000 "$locked"
	config_with "$FA_TMP/kek-locked.conf" kek_file "$locked"
	expect_rejected "unreadable kek_file" "$FA_TMP/kek-locked.conf" \
		serve "$locked"
fi

closed=$(fa_free_port)
unreachable=$(sed -n 's/^database_url = //p' "$base" |
	sed "s/port=[0-9]*/port=$closed/")
config_with "$FA_TMP/db.conf" database_url "$unreachable"
expect_rejected "unreachable database" "$FA_TMP/db.conf" serve database
expect_rejected "unreachable database" "$FA_TMP/db.conf" migrate database
