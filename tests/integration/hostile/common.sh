# shellcheck shell=bash
# Helpers for the hostile-client tests. They attack a private Mosquitto
# broker with the fleetauth plugin that reads the shared stack's database.
# Every client connects from 127.0.0.1, and the stack's own broker allows
# 20 failed CONNECTs per address in 60 s, so a few dozen rejected CONNECTs
# there would throttle every later test. The private broker runs with
# failed_connect_limit 0 unless a test sets a limit.
#
#   . "$(dirname "$0")/common.sh"
#   hostile_init "$@"

# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

HOSTILE_PASSWORD='correct horse battery staple 42'

# Loads the env file, checks the tools, and creates carrier H_CARRIER with
# driver H_DRIVER (assigned to load H_LOAD) and dispatcher H_DISPATCHER.
# The ids end in a random suffix so that repeated runs do not collide.
hostile_init()
{
	fa_load_env "$@"
	local tool run
	for tool in curl jq openssl psql mosquitto mosquitto_pub \
		mosquitto_sub; do
		command -v "$tool" >/dev/null ||
			fa_skip "$tool is not installed"
	done
	[[ -r $FLEETAUTH_PLUGIN ]] ||
		fa_fail "plugin $FLEETAUTH_PLUGIN not found: build it first"
	run=$(openssl rand -hex 4)
	H_CARRIER=hc-$run
	H_DRIVER=hdrv-$run
	H_DISPATCHER=hdisp-$run
	H_LOAD=hload-$run
	fa_api POST /v1/carriers "$(jq -cn --arg id "$H_CARRIER" \
		'{id: $id, name: "Hostile test carrier"}')"
	fa_expect_status 201 "create carrier $H_CARRIER"
	hostile_user "$H_DRIVER" driver
	hostile_user "$H_DISPATCHER" dispatcher
	fa_api POST /v1/loads "$(jq -cn --arg c "$H_CARRIER" --arg id "$H_LOAD" \
		'{carrier: $c, id: $id}')"
	fa_expect_status 201 "create load $H_LOAD"
	fa_api PUT "/v1/loads/$H_LOAD/assignment?carrier=$H_CARRIER" \
		"$(jq -cn --arg d "$H_DRIVER" '{driver: $d}')"
	fa_expect_status 200 "assign $H_DRIVER to $H_LOAD"
}

hostile_user()
{
	local id=$1 role=$2
	fa_api POST /v1/users "$(jq -cn --arg u "$id" --arg r "$role" \
		--arg c "$H_CARRIER" --arg p "$HOSTILE_PASSWORD" \
		'{username: $u, password: $p, role: $r, carrier: $c}')"
	fa_expect_status 201 "create user $id"
}

# Prints a valid access token for user id with role (claims merged from
# an optional JSON object).
hostile_token()
{
	local id=$1 role=$2 extra=${3:-'{}'}
	fa_mint_token "$(fa_claims "$id" "$role" "$H_CARRIER" 900 "$extra")"
}

# Starts a private broker with the plugin on a free loopback port; extra
# arguments are plugin options as name=value. Sets H_PORT, H_BROKER_PID and
# H_BROKER_LOG; the broker is stopped when the test exits. With H_WITH_V6=1
# it also listens on [::1]:H_PORT6, a second client address for tests of
# the per-address throttle.
hostile_start_broker()
{
	local name=$1 conf log pid option
	shift
	conf=$FA_TMP/$name.conf
	log=$FA_TMP/$name.log
	H_PORT=$(fa_free_port)
	H_PORT6=$(fa_free_port)
	{
		printf 'user root\nper_listener_settings false\n'
		printf 'allow_anonymous false\npersistence false\n'
		printf 'log_dest stderr\nlog_type all\nconnection_messages true\n'
		printf 'plugin %s\n' "$FLEETAUTH_PLUGIN"
		printf 'plugin_opt_db_conninfo host=%s port=%s dbname=%s' \
			"$PGHOST" "$PGPORT" "$PGDATABASE"
		printf ' user=%s password=%s connect_timeout=5\n' \
			"$FLEETAUTH_BROKER_PGUSER" \
			"$FLEETAUTH_BROKER_PGPASSWORD"
		printf 'plugin_opt_issuer %s\nplugin_opt_audience %s\n' \
			"$FLEETAUTH_ISSUER" "$FLEETAUTH_AUDIENCE"
		for option in "$@"; do
			printf 'plugin_opt_%s\n' "${option/=/ }"
		done
		printf 'listener %s 127.0.0.1\n' "$H_PORT"
		if [[ ${H_WITH_V6:-0} == 1 ]]; then
			printf 'listener %s ::1\n' "$H_PORT6"
		fi
	} >"$conf"
	mosquitto -c "$conf" >"$log" 2>&1 &
	pid=$!
	H_BROKER_PID=$pid
	H_BROKER_LOG=$log
	fa_on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
	fa_wait_for "[[ -n \$(ss -Hltn 'sport = :$H_PORT') ]] ||
		! kill -0 $pid 2>/dev/null" 30
	kill -0 "$pid" 2>/dev/null ||
		fa_fail "broker $name exited at start: $(tail -n 5 "$log")"
}

# Publishes one message on the private broker; sets FA_MQTT_RC and friends.
hostile_pub()
{
	fa_mqtt_run mosquitto_pub -h 127.0.0.1 -p "$H_PORT" "$@"
}

# Subscribes on the private broker (pass -W and -C as needed).
hostile_sub()
{
	fa_mqtt_run mosquitto_sub -h 127.0.0.1 -p "$H_PORT" "$@"
}

# Fails unless a CONNECT with password token as user is refused.
hostile_expect_refused()
{
	local what=$1 user=$2 token=$3
	shift 3
	hostile_pub -i "$user" -u "$user" -P "$token" -q 1 \
		-t "fleet/$H_CARRIER/drivers/$user/status" -m x "$@"
	fa_expect_ne "$FA_MQTT_RC" 0 "exit code of mosquitto_pub ($what)"
	fa_expect_ne "$FA_MQTT_RC" 124 \
		"exit code of mosquitto_pub ($what; 124 is a timeout)"
}

# Fails unless a CONNECT and publish with token as user succeeds.
hostile_expect_accepted()
{
	local what=$1 user=$2 token=$3
	hostile_pub -i "$user" -u "$user" -P "$token" -q 1 \
		-t "fleet/$H_CARRIER/drivers/$user/status" -m ok
	fa_expect_eq "$FA_MQTT_RC" 0 \
		"exit code of mosquitto_pub ($what): $FA_MQTT_ERR"
}

# Waits until the plugin has loaded user (it follows the database through
# LISTEN/NOTIFY and polling), by connecting with a valid token.
hostile_wait_user()
{
	local user=$1 role=$2 token
	token=$(hostile_token "$user" "$role")
	fa_wait_for "hostile_pub -i $user -u $user -P '$token' -q 1 \
		-t fleet/$H_CARRIER/drivers/$user/status -m ready &&
		[[ \$FA_MQTT_RC == 0 ]]" 15
}
