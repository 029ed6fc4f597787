#!/usr/bin/env bash
# "tools/stack up" fails with a message that names what failed, and stops
# everything it had started: missing binaries, a plugin that Mosquitto
# cannot load, and a directory that is not a stack directory.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"

stack=$FLEETAUTH_SOURCE_DIR/tools/stack

# Runs "tools/stack up" with arguments; fails unless it exits non-zero with
# needle in its output.
expect_up_fails()
{
	local what=$1 needle=$2
	shift 2
	local rc=0
	timeout 120 "$stack" up "$@" >"$FA_TMP/up.log" 2>&1 || rc=$?
	[[ $rc -ne 124 ]] || fa_fail "$what: tools/stack up still ran after 120 s"
	fa_expect_ne "$rc" 0 "$what: exit code of tools/stack up"
	fa_expect_contains "$(cat "$FA_TMP/up.log")" "$needle" "$what: message"
}

# A build directory without binaries.
mkdir "$FA_TMP/empty-build"
expect_up_fails "empty build directory" \
	"fleetauthd not found at $FA_TMP/empty-build/authsvc/fleetauthd" \
	"$FA_TMP/no-binaries" --fast-bcrypt --build "$FA_TMP/empty-build"
[[ ! -e $FA_TMP/no-binaries ]] ||
	fa_fail "up created the stack directory before checking binaries"

# A plugin file that is not a shared object: everything up to the broker
# starts, then the broker fails, and up must stop the rest.
broken=$FA_TMP/broken-build
mkdir -p "$broken/authsvc" "$broken/plugin"
ln -s "$FLEETAUTHD" "$broken/authsvc/fleetauthd"
printf 'not a shared object\n' >"$broken/plugin/fleetauth_plugin.so"
chmod 0644 "$broken/plugin/fleetauth_plugin.so"
# The stack directory must be reachable for the broker's user when root.
dir=$(mktemp -d /tmp/fa-broken-stack.XXXXXX)
fa_on_exit "'$stack' down '$dir/s' >/dev/null 2>&1; rm -rf '$dir'"
chmod 0755 "$dir" "$FA_TMP" "$broken" "$broken/plugin"
expect_up_fails "plugin that does not load" "Mosquitto broker 1" \
	"$dir/s" --fast-bcrypt --build "$broken"
output=$(cat "$FA_TMP/up.log")
fa_expect_contains "$output" "$dir/s/logs/broker-1.log" \
	"plugin that does not load: log path"
fa_expect_contains "$output" "stopping what was started" \
	"plugin that does not load: cleanup message"

# "down" removed the pids file, so look for leftovers by their files: only
# this stack's processes have its paths on their command line.
leftovers=$(pgrep -a -f -- "$dir/s/" || true)
[[ -z $leftovers ]] ||
	fa_fail "processes of the failed up still run: $leftovers"
pg_pid=$(sed -n 's/^pg_pid=//p' "$dir/s/state" | tail -n 1)
[[ -n $pg_pid ]] || fa_fail "the failed up recorded no PostgreSQL pid"
fa_pid_running "$pg_pid" &&
	fa_fail "PostgreSQL (pid $pg_pid) still runs after the failed up"
fleetauthd_port=$(sed -n 's/^listen_port = //p' "$dir/s/fleetauthd.conf")
[[ -z $(ss -Hltn "sport = :$fleetauthd_port") ]] ||
	fa_fail "port $fleetauthd_port of fleetauthd still listens after the" \
		"failed up"

# A directory that tools/stack did not create is left alone.
mkdir "$FA_TMP/foreign"
printf 'keep me\n' >"$FA_TMP/foreign/data.txt"
expect_up_fails "foreign directory" "was not created by tools/stack" \
	"$FA_TMP/foreign" --fast-bcrypt --build "$FLEETAUTH_BUILD_DIR"
fa_expect_eq "$(cat "$FA_TMP/foreign/data.txt")" "keep me" \
	"file in the foreign directory"
