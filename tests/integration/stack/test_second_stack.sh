#!/usr/bin/env bash
# A second stack with two brokers starts next to the first one, and
# "tools/stack down" leaves none of its processes running and none of its
# ports listening. The stack goes under a mode 0700 folder. As root, the
# postgres and mosquitto users cannot traverse it, so "up" must keep the
# cluster and broker folders under /tmp, and "down" must remove them.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"

stack=$FLEETAUTH_SOURCE_DIR/tools/stack
parent=$FA_TMP/private
mkdir -m 0700 "$parent"
dir=$parent/stack
fa_on_exit "'$stack' down '$dir' >/dev/null 2>&1"

"$stack" up "$dir" --fast-bcrypt --brokers 2 --build "$FLEETAUTH_BUILD_DIR" \
	>"$FA_TMP/up.log" 2>&1 || fa_fail "second stack did not start: $(
		tail -n 20 "$FA_TMP/up.log")"

second_env=$(
	. "$dir/env"
	printf '%s %s %s %s %s\n' "$PGPORT" "${FLEETAUTH_URL##*:}" \
		"${MQTT_PORTS//,/ }" "${MQTT_TLS_PORTS//,/ }" "$MQTT_PORTS"
)
read -r -a ports <<<"${second_env% *}"
fa_expect_eq "${#ports[@]}" 6 "number of ports of the second stack"
second_mqtt_ports=${second_env##* }
[[ $second_mqtt_ports != "$MQTT_PORTS" ]] ||
	fa_fail "second stack reused the MQTT ports of the first"

# tools/stack logs a port collision and the retry; show what it printed.
cat "$FA_TMP/up.log"

# The pids file contains one line per start attempt; the last one of each
# name runs.
pids=$(awk '{ print $2 }' "$dir/pids")
pids+=" $(sed -n 's/^pg_pid=//p' "$dir/state" | tail -n 1)"
for name in fleetauthd broker-1 broker-2; do
	pid=$(awk -v name="$name" '$1 == name { pid = $2 } END { print pid }' \
		"$dir/pids")
	[[ -n $pid ]] || fa_fail "no pid recorded for $name"
	fa_pid_running "$pid" || fa_fail "$name (pid $pid) is not running"
done
pg_pid=$(sed -n 's/^pg_pid=//p' "$dir/state" | tail -n 1)
fa_pid_running "$pg_pid" || fa_fail "postgres (pid $pg_pid) is not running"
for port in "${ports[@]}"; do
	[[ -n $(ss -Hltn "sport = :$port") ]] ||
		fa_fail "nothing listens on port $port of the second stack"
done

# Both brokers of the second stack refuse an anonymous client.
IFS=, read -r -a mqtt_ports <<<"$second_mqtt_ports"
for port in "${mqtt_ports[@]}"; do
	fa_mqtt_run mosquitto_pub -h 127.0.0.1 -p "$port" -V mqttv5 \
		-t fleet/x -m hello
	fa_expect_eq "$FA_MQTT_RC" 135 "anonymous CONNECT to port $port"
done

tmp_root=$(sed -n 's/^tmp_root=//p' "$dir/state")
if [[ $(id -u) -eq 0 ]]; then
	[[ -n $tmp_root && -d $tmp_root ]] ||
		fa_fail "as root, a stack under a mode 0700 folder should" \
			"keep its cluster under /tmp"
fi

"$stack" down "$dir" >"$FA_TMP/down.log" 2>&1 ||
	fa_fail "tools/stack down failed: $(cat "$FA_TMP/down.log")"

for pid in $pids; do
	fa_pid_running "$pid" && fa_fail "pid $pid still runs after down"
done
for port in "${ports[@]}"; do
	[[ -z $(ss -Hltn "sport = :$port") ]] ||
		fa_fail "port $port still listens after down"
done
if [[ -n $tmp_root && -e $tmp_root ]]; then
	fa_fail "down left $tmp_root behind"
fi
[[ -s $dir/logs/postgres.log ]] ||
	fa_fail "down did not keep the PostgreSQL log in $dir/logs"

# The first stack is untouched.
fa_api_as "" GET /healthz
fa_expect_status 200 "GET /healthz on the first stack after the second down"

# A second down is harmless.
"$stack" down "$dir" >"$FA_TMP/down.log" 2>&1 ||
	fa_fail "a second tools/stack down failed: $(cat "$FA_TMP/down.log")"
