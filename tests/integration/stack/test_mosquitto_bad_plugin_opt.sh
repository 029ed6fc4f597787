#!/usr/bin/env bash
# Mosquitto with the fleetauth plugin refuses to start when a plugin option
# is unknown, malformed or missing, and its log names the option. Each case
# starts a separate broker from a copy of broker 1's configuration on fresh
# ports.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"

source_conf=${FLEETAUTH_MOSQUITTO_CONFS%%,*}
[[ -r $source_conf ]] || fa_fail "broker configuration $source_conf missing"
# As root, each broker drops to the mosquitto user, which must be able to
# read the copied configurations.
workdir=$(mktemp -d /tmp/fa-bad-plugin.XXXXXX)
fa_on_exit "rm -rf '$workdir'"
chmod 0755 "$workdir"

# Writes a configuration on two new ports, with sed_script applied to the
# lines of broker 1's configuration, to file.
broker_config()
{
	local file=$1 sed_script=$2 port tls_port
	port=$(fa_free_port)
	tls_port=$(fa_free_port)
	sed -e "s/^listener [0-9]* 127.0.0.1\$/listener PORT 127.0.0.1/" \
		"$source_conf" |
		awk -v p1="$port" -v p2="$tls_port" \
			'/^listener PORT/ { n++; sub("PORT", n == 1 ? p1 : p2) }
			 { print }' |
		sed -e "$sed_script" >"$file"
	if [[ $(id -u) -eq 0 ]]; then
		chown mosquitto "$file"
	fi
	chmod 0600 "$file"
}

# Starts mosquitto with file; fails unless it exits non-zero within 15 s
# and its output contains needle.
expect_start_rejected()
{
	local what=$1 file=$2 needle=$3 rc=0 output
	timeout 15 /usr/sbin/mosquitto -c "$file" >"$FA_TMP/out" 2>&1 \
		</dev/null || rc=$?
	output=$(cat "$FA_TMP/out")
	[[ $rc -ne 124 ]] || fa_fail "$what: mosquitto still ran after 15 s:" \
		"$output"
	fa_expect_ne "$rc" 0 "$what: mosquitto exit code"
	fa_expect_contains "$output" "$needle" "$what: broker log"
}

db_line=$(grep '^plugin_opt_[a-z_]* host=' "$source_conf" || true)
[[ -n $db_line ]] || fa_fail "no database plugin option in $source_conf"
db_option=${db_line%% *}
db_option=${db_option#plugin_opt_}

broker_config "$workdir/unknown.conf" \
	'/^plugin_opt_audience/a plugin_opt_no_such_option 1'
expect_start_rejected "unknown plugin option" "$workdir/unknown.conf" \
	no_such_option

broker_config "$workdir/leeway.conf" \
	'/^plugin_opt_audience/a plugin_opt_leeway 100000'
expect_start_rejected "leeway out of range" "$workdir/leeway.conf" leeway

broker_config "$workdir/bool.conf" \
	'/^plugin_opt_audience/a plugin_opt_start_fail_closed maybe'
expect_start_rejected "start_fail_closed not a boolean" "$workdir/bool.conf" \
	start_fail_closed

broker_config "$workdir/no-db.conf" "/^plugin_opt_$db_option /d"
expect_start_rejected "database option missing" "$workdir/no-db.conf" \
	"$db_option"
