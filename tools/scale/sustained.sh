#!/usr/bin/env bash
# Sustained mixed load on one plugin broker and fleetauthd for SECONDS
# seconds:
#   - telemetry: CLIENTS drivers, each assigned its own load, publish to it
#     at RATE messages per second in total and subscribe to it (QoS 0);
#   - rounds of operations, each after a pause of ROUND_INTERVAL seconds:
#       200 token clients with fresh tokens CONNECT and disconnect,
#       10 extra loads are assigned to drivers (PUT .../assignment) or, in
#       the next round, unassigned again (DELETE .../assignment),
#       20 app users rotate their refresh token (POST /v1/auth/refresh),
#       10 users of an earlier CONNECT batch are disabled (PATCH /v1/users).
# Every SAMPLE_INTERVAL seconds the script samples VmRSS and CPU time of the
# broker and of fleetauthd. At the end it prints the operations made per
# audit action next to the audit_events rows written in the same time, the
# RSS slope of both processes after the first minute, and fails on any
# error or on any difference between operations and audit rows.
#
#   tools/scale/sustained.sh BUILD_DIR [SECONDS [CLIENTS [RATE]]]
#
# Defaults: 600 s, 2000 clients, 2000 messages/s. Starts its own stack in a
# temporary folder with tools/stack and stops it on exit.
set -euo pipefail

readonly SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly ROUND_INTERVAL=10 # seconds of pause before each round
readonly SAMPLE_INTERVAL=5 # seconds between RSS samples
readonly CHURN_CLIENTS=200 # fresh CONNECTs per round
readonly EXTRA_LOADS=10    # loads assigned and unassigned in turn
readonly APP_USERS=20      # users that refresh once per round
readonly REVOKE_PER_ROUND=10
readonly APP_PASSWORD='scale load test password 7'
build=$(cd "${1:?usage: sustained.sh BUILD_DIR [SECONDS [CLIENTS [RATE]]]}" &&
	pwd)
seconds=${2:-600}
clients=${3:-2000}
rate=${4:-2000}
loadgen=$build/tools/loadgen/fleetauth-loadgen
mint=$build/tools/bench/fleetauth-bench-mint
api=$build/tools/scale/fleetauth-scale-api
for tool in "$loadgen" "$mint" "$api"; do
	[[ -x $tool ]] || {
		echo "error: $tool not found: build it in $build" >&2
		exit 1
	}
done
((clients >= EXTRA_LOADS)) || {
	echo "error: CLIENTS ($clients) must be at least $EXTRA_LOADS" >&2
	exit 1
}

work=$(mktemp -d /tmp/fleetauth-scale-sustained.XXXXXX)
load_pid=
sampler_pid=
cleanup()
{
	local pid
	for pid in $load_pid $sampler_pid; do
		kill "$pid" 2>/dev/null || true
	done
	"$SRC_DIR/tools/stack" down "$work/stack" >/dev/null 2>&1 || true
	[[ -n ${SCALE_KEEP:-} ]] || rm -rf "$work"
}
trap cleanup EXIT
log()
{
	printf 'scale: %s\n' "$*" >&2
}

"$SRC_DIR/tools/stack" up "$work/stack" --fast-bcrypt --build "$build" \
	>"$work/stack-up.log" 2>&1 || {
	tail -n 20 "$work/stack-up.log" >&2
	exit 1
}
set -a
. "$work/stack/env"
set +a
broker_pid=$(awk '$1 == "broker-1" { print $2 }' "$work/stack/pids")
fleetauthd_pid=$(awk '$1 == "fleetauthd" { print $2 }' "$work/stack/pids")
port=${MQTT_PORTS%%,*}
api_port=${FLEETAUTH_URL##*:}

# Operation counters: "action ok failed" per line in $work/ops, summed at
# the end. Actions are the audit_events action of the API call.
: >"$work/ops"
count_ops()
{
	local action=$1 ok=$2 failed=$3
	printf '%s %d %d\n' "$action" "$ok" "$failed" >>"$work/ops"
}

# Sends the requests in file $1 with fleetauth-scale-api and counts them
# under action $2.
send_api()
{
	local requests=$1 action=$2 out=$work/api.out ok failed
	"$api" --port "$api_port" --workers 4 <"$requests" >"$out" || true
	ok=$(awk '$4 >= 200 && $4 <= 299' "$out" | wc -l)
	failed=$(($(wc -l <"$requests") - ok))
	((failed == 0)) || awk '$4 < 200 || $4 > 299' "$out" >>"$work/errors"
	count_ops "$action" "$ok" "$failed"
}

rounds=$((seconds / ROUND_INTERVAL))
tag=u$(openssl rand -hex 3)
total=$((clients + CHURN_CLIENTS * (rounds + 1)))
psql -X -q -v ON_ERROR_STOP=1 <<EOF
INSERT INTO carriers (id, name) VALUES ('$tag', 'sustained');
INSERT INTO principals (id, kind)
	SELECT '${tag}d' || i, 'user' FROM generate_series(1, $total) i;
INSERT INTO users (id, carrier_id, role, password_hash)
	SELECT '${tag}d' || i, '$tag', 'driver', 'x'
	FROM generate_series(1, $total) i;
INSERT INTO loads (carrier_id, id, created_by)
	SELECT '$tag', 'l' || i, 'x' FROM generate_series(1, $clients) i;
INSERT INTO loads (carrier_id, id, created_by)
	SELECT '$tag', 'x' || i, 'x' FROM generate_series(1, $EXTRA_LOADS) i;
INSERT INTO load_assignments (carrier_id, load_id, driver_id, assigned_by)
	SELECT '$tag', 'l' || i, '${tag}d' || i, 'x'
	FROM generate_series(1, $clients) i;
EOF
kid=$(psql -X -q -A -t -c \
	"SELECT kid FROM signing_keys WHERE status = 'current'")
"$mint" --key "$FLEETAUTH_SIGNING_KEY" --kid "$kid" --prefix "${tag}d" \
	--count "$total" --carrier "$tag" --issuer "$FLEETAUTH_ISSUER" \
	--audience "$FLEETAUTH_AUDIENCE" --ttl $((seconds + 600)) \
	>"$work/all"
head -n "$clients" "$work/all" >"$work/steady"

# Audit rows are counted from here on.
audit_from=$(psql -X -q -A -t -c \
	"SELECT coalesce(max(id), 0) FROM audit_events")

# App users that log in with a password and then refresh.
for ((i = 1; i <= APP_USERS; i++)); do
	printf 'a%d POST /v1/users {"username":"%sa%d","password":"%s",' \
		"$i" "$tag" "$i" "$APP_PASSWORD"
	printf '"role":"driver","carrier":"%s"}\n' "$tag"
done >"$work/create"
send_api "$work/create" user.create
login_ok=0
for ((i = 1; i <= APP_USERS; i++)); do
	body=$(jq -cn --arg u "${tag}a$i" --arg p "$APP_PASSWORD" \
		'{username: $u, password: $p}')
	if curl -s -f -X POST -H 'Content-Type: application/json' \
		--data-binary "$body" "$FLEETAUTH_URL/v1/auth/login" |
		jq -er .refresh_token >"$work/refresh.$i"; then
		login_ok=$((login_ok + 1))
	else
		echo "login ${tag}a$i failed" >>"$work/errors"
	fi
done
count_ops login "$login_ok" $((APP_USERS - login_ok))
sleep 3 # the broker applies the inserted rows through change_log

# Samples "seconds broker_rss_kib fleetauthd_rss_kib broker_cpu_ms
# fleetauthd_cpu_ms" until killed.
sample_loop()
{
	local start=$SECONDS pid values
	while :; do
		values=
		for pid in "$broker_pid" "$fleetauthd_pid"; do
			values+=" $(awk '/^VmRSS:/ { print $2 }' \
				"/proc/$pid/status")"
		done
		# utime + stime of all threads, in clock ticks of 10 ms
		for pid in "$broker_pid" "$fleetauthd_pid"; do
			values+=" $(awk '{ sub(/^.*\) /, "")
				print ($12 + $13) * 10 }' "/proc/$pid/stat")"
		done
		printf '%d%s\n' $((SECONDS - start)) "$values"
		sleep "$SAMPLE_INTERVAL"
	done
}
sample_loop >"$work/samples" 2>/dev/null &
sampler_pid=$!

"$loadgen" --json --port "$port" --clients "$work/steady" \
	--concurrency 64 --hold "$seconds" --pub-rate "$rate" \
	--pub-topic "fleet/$tag/loads/l%v/driver/pos" \
	--sub-topic "fleet/$tag/loads/l%v/driver/#" \
	--timeout $((seconds + 120)) >"$work/steady.json" 2>"$work/steady.err" &
load_pid=$!

printf 'scenario: sustained mixed load, %d clients, %s msg/s, %d s;' \
	"$clients" "$rate" "$seconds"
printf ' rounds after %d s pauses: %d fresh CONNECTs,' \
	"$ROUND_INTERVAL" "$CHURN_CLIENTS"
printf ' %d assignment changes,' "$EXTRA_LOADS"
printf ' %d refreshes, %d users disabled\n' "$APP_USERS" "$REVOKE_PER_ROUND"
printf 'machine: %s cores, load average at start %s\n' "$(nproc)" \
	"$(cut -d' ' -f1-3 /proc/loadavg)"
round=0
started=$SECONDS
while kill -0 "$load_pid" 2>/dev/null &&
	((SECONDS - started + ROUND_INTERVAL <= seconds)); do
	sleep "$ROUND_INTERVAL"
	round=$((round + 1))

	# Fresh-token CONNECTs; each round uses the next CHURN_CLIENTS users.
	first=$((clients + (round - 1) * CHURN_CLIENTS + 1))
	sed -n "${first},$((first + CHURN_CLIENTS - 1))p" "$work/all" \
		>"$work/churn"
	churn=$("$loadgen" --json --port "$port" --clients "$work/churn" \
		--concurrency 32 --hold 0 --timeout 30 2>/dev/null |
		jq -r .connected) || churn=0
	count_ops mqtt.connect "$churn" $((CHURN_CLIENTS - churn))

	# Assignment changes: odd rounds assign load x<i> to driver i, even
	# rounds remove the drivers again.
	for ((i = 1; i <= EXTRA_LOADS; i++)); do
		if ((round % 2)); then
			printf 'x%d PUT /v1/loads/x%d/assignment' "$i" "$i"
			printf ' {"driver":"%sd%d","carrier":"%s"}\n' \
				"$tag" "$i" "$tag"
		else
			printf 'x%d DELETE' "$i"
			printf ' /v1/loads/x%d/assignment?carrier=%s\n' \
				"$i" "$tag"
		fi
	done >"$work/assign"
	if ((round % 2)); then
		send_api "$work/assign" load.assign
	else
		send_api "$work/assign" load.unassign
	fi

	# Refresh rotations, each with the token the last one returned.
	ok=0
	for ((i = 1; i <= APP_USERS; i++)); do
		body=$(jq -cn --arg t "$(cat "$work/refresh.$i")" \
			'{refresh_token: $t}')
		if curl -s -f -X POST -H 'Content-Type: application/json' \
			--data-binary "$body" \
			"$FLEETAUTH_URL/v1/auth/refresh" |
			jq -er .refresh_token >"$work/refresh.new"; then
			mv "$work/refresh.new" "$work/refresh.$i"
			ok=$((ok + 1))
		else
			echo "refresh of ${tag}a$i failed" >>"$work/errors"
		fi
	done
	count_ops refresh "$ok" $((APP_USERS - ok))

	# Revocations: disable users of this round's CONNECT batch, which
	# have disconnected again.
	for ((i = 0; i < REVOKE_PER_ROUND; i++)); do
		printf 'r%d PATCH /v1/users/%sd%d {"status":"disabled"}\n' \
			"$i" "$tag" $((first + i))
	done >"$work/revoke"
	send_api "$work/revoke" user.update

	kill -0 "$broker_pid" 2>/dev/null || {
		echo "error: the broker (pid $broker_pid) exited" >&2
		exit 1
	}
done
wait "$load_pid" || true
load_pid=
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=

printf 'samples every %d s: time_s broker_rss_kib fleetauthd_rss_kib' \
	"$SAMPLE_INTERVAL"
printf ' broker_cpu_ms fleetauthd_cpu_ms (every 12th shown)\n'
awk 'NR % 12 == 1' "$work/samples"
tail -n 1 "$work/samples"
# Least-squares slope of column $1 against time after the first minute,
# in KiB per minute.
slope()
{
	awk -v col="$1" '$1 >= 60 { n++; x = $1 / 60; y = $col
		sx += x; sy += y; sxx += x * x; sxy += x * y }
		END { d = n * sxx - sx * sx
			if (n < 2 || d == 0) { print "-"; exit }
			printf "%.1f", (n * sxy - sx * sy) / d }' \
		"$work/samples"
}
printf '%d rounds of operations\n' "$round"
printf 'RSS slope after the first minute (KiB/min): broker %s,' \
	"$(slope 2)"
printf ' fleetauthd %s\n' "$(slope 3)"

steady=$(jq -c '{connected, refused, failed, dropped, subscriptions_denied,
	published, publish_denied, delivered, timed_out}' "$work/steady.json" ||
	true)
printf 'telemetry: %s\n' "${steady:-no report: $(cat "$work/steady.err")}"
telemetry_errors=$(jq '.refused + .failed + .dropped +
	.subscriptions_denied + .publish_denied +
	(if .timed_out then 1 else 0 end) + (.published - .delivered)' \
	"$work/steady.json" 2>/dev/null || echo 1)

psql -X -q -A -t -F ' ' -c "SELECT action, count(*) FROM audit_events
	WHERE id > $audit_from AND outcome = 'success' GROUP BY action" \
	>"$work/audit"
printf 'operations and audit rows (outcome success) since the start:\n'
printf '  %-14s %8s %8s %8s\n' action ok failed audit
mismatch=0
while read -r action ok failed; do
	audit=$(awk -v a="$action" '$1 == a { print $2 }' "$work/audit")
	if [[ $action == mqtt.connect ]]; then
		audit=n/a # the broker writes no audit rows
	elif [[ ${audit:-0} != "$ok" ]]; then
		mismatch=1
	fi
	printf '  %-14s %8d %8d %8s\n' "$action" "$ok" "$failed" "${audit:-0}"
done < <(awk '{ ok[$1] += $2; f[$1] += $3 } END {
	for (a in ok) print a, ok[a], f[a] }' "$work/ops" | sort)
other=$(psql -X -q -A -t -c "SELECT count(*) FROM audit_events
	WHERE id > $audit_from AND outcome <> 'success'")
printf '  audit rows with another outcome: %s\n' "$other"
errors=$(awk '{ f += $3 } END { print f + 0 }' "$work/ops")
printf 'errors: %d in operations, %d in telemetry\n' "$errors" \
	"$telemetry_errors"
((errors == 0 && telemetry_errors == 0 && mismatch == 0 && other == 0)) || {
	[[ ! -s $work/errors ]] || head -n 20 "$work/errors" >&2
	echo "error: the run had errors or audit rows that differ from the" \
		"operations (see above; set SCALE_KEEP=1 to keep $work)" >&2
	exit 1
}
