#!/usr/bin/env bash
# Scale, short version: 200 driver token clients spread over 3 brokers that
# follow one database. Clients 1 to 100 have plain tokens, clients 101 to
# 200 tokens bound to a phone device of their own (did claim). One burst of
# 50 API calls, sent 8 at a time, revokes 50 of them: 25 users disabled with
# PATCH /v1/users/{id} and 25 phones revoked with POST
# /v1/devices/{id}/revoke. Every broker must disconnect exactly the revoked
# clients within 10 s and keep every other client connected. The test
# starts its own 3-broker stack, because the shared test stack has one
# broker.
#
#   test_revocation_fanout.sh ENV_FILE
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
fa_load_env "$@"

readonly CLIENTS=200
readonly HALF=100
readonly REVOKED_EVERY=4 # clients 4, 8, ..., 200 are revoked: 50 clients
readonly DISCONNECT_TIMEOUT=10
readonly SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)

build=${FLEETAUTH_BUILD_DIR:-}
[[ -n $build ]] || fa_fail "FLEETAUTH_BUILD_DIR is not set in $FLEETAUTH_ENV"
watch=$build/tools/scale/fleetauth-scale-watch
mint=$build/tools/bench/fleetauth-bench-mint
api=$build/tools/scale/fleetauth-scale-api
for tool in "$watch" "$mint" "$api"; do
	[[ -x $tool ]] || fa_fail "$tool not found: build the" \
		"$(basename "$tool") target in $build"
done

stack=$FA_TMP/stack
"$SRC_DIR/tools/stack" up "$stack" --brokers 3 --fast-bcrypt \
	--build "$build" >"$FA_TMP/stack-up.log" 2>&1 ||
	fa_fail "tools/stack up --brokers 3 failed:" \
		"$(tail -n 20 "$FA_TMP/stack-up.log")"
fa_on_exit "'$SRC_DIR/tools/stack' down '$stack' >/dev/null 2>&1"
# From here on psql, the API, MQTT_PORTS and the signing key are the
# private stack's.
set -a
. "$stack/env"
set +a
IFS=, read -r -a ports <<<"$MQTT_PORTS"
fa_expect_eq "${#ports[@]}" 3 "brokers in the private stack"

tag=f$(openssl rand -hex 3)
fa_sql "INSERT INTO carriers (id, name) VALUES ('$tag', 'fanout test');
	INSERT INTO principals (id, kind)
		SELECT '${tag}d' || i, 'user'
		FROM generate_series(1, $CLIENTS) i;
	INSERT INTO users (id, carrier_id, role, password_hash)
		SELECT '${tag}d' || i, '$tag', 'driver', 'x'
		FROM generate_series(1, $CLIENTS) i;
	INSERT INTO principals (id, kind)
		SELECT '${tag}m' || i, 'device'
		FROM generate_series($HALF + 1, $CLIENTS) i;
	INSERT INTO devices (id, carrier_id, device_type, status, user_id,
			created_by, enrolled_at)
		SELECT '${tag}m' || i, '$tag', 'phone', 'active',
			'${tag}d' || i, 'fanout test', now()
		FROM generate_series($HALF + 1, $CLIENTS) i;" ||
	fa_fail "inserting $CLIENTS drivers and $HALF phones failed"

# Each broker has loaded its snapshot before it listened, so it must learn
# about these users and phones from change_log. Wait until every broker
# accepts the last phone client.
clients=$FA_TMP/clients
mint_args=(--key "$FLEETAUTH_SIGNING_KEY" --kid "$(fa_current_kid)"
	--prefix "${tag}d" --count "$HALF" --carrier "$tag"
	--issuer "$FLEETAUTH_ISSUER" --audience "$FLEETAUTH_AUDIENCE")
{
	"$mint" "${mint_args[@]}" &&
		"$mint" "${mint_args[@]}" --first $((HALF + 1)) \
			--device-prefix "${tag}m"
} >"$clients" || fa_fail "fleetauth-bench-mint failed"
read -r _ last_user last_token _ < <(tail -n 1 "$clients")
for port in "${ports[@]}"; do
	fa_wait_for "mosquitto_pub -h 127.0.0.1 -p $port -i $last_user:probe$port \
		-u $last_user -P $last_token -t probe -n -q 0 \
		2>/dev/null" 15
done

out=$FA_TMP/watch.out
"$watch" --ports "$MQTT_PORTS" --clients "$clients" --concurrency 32 \
	--hold 30 --timeout 30 --stop-after-drops $((CLIENTS / REVOKED_EVERY)) \
	--grace 2 >"$out" 2>"$out.err" &
watch_pid=$!
fa_on_exit "kill $watch_pid 2>/dev/null"
fa_wait_for "grep -qs '^ready ' '$out' || ! kill -0 $watch_pid 2>/dev/null" 30
read -r _ _ connected refused failed < <(grep '^ready ' "$out") ||
	fa_fail "fleetauth-scale-watch ended before ready:" \
		"$(cat "$out.err")"
fa_expect_eq "$connected" "$CLIENTS" "clients connected"
fa_expect_eq "$refused" 0 "clients refused"
fa_expect_eq "$failed" 0 "clients failed"

# The burst: one API call per revoked client, users and phones
# interleaved.
requests=$FA_TMP/requests
for ((i = REVOKED_EVERY; i <= HALF; i += REVOKED_EVERY)); do
	printf '%s PATCH /v1/users/%s {"status":"disabled"}\n' \
		"${tag}d$i" "${tag}d$i"
	j=$((i + HALF))
	printf '%s POST /v1/devices/%s/revoke {"reason":"lost"}\n' \
		"${tag}d$j" "${tag}m$j"
done >"$requests"
api_out=$FA_TMP/api.out
"$api" --port "${FLEETAUTH_URL##*:}" --workers 8 <"$requests" \
	>"$api_out" || fa_fail "API calls of the burst failed:" \
	"$(awk '$4 < 200 || $4 > 299' "$api_out")"
fa_expect_eq "$(wc -l <"$api_out")" $((CLIENTS / REVOKED_EVERY)) \
	"API calls answered"

fa_wait_for "! kill -0 $watch_pid 2>/dev/null" $((DISCONNECT_TIMEOUT + 5))
wait "$watch_pid" || fa_fail "fleetauth-scale-watch failed:" \
	"$(cat "$out.err")"

# Expected: client i is on ports[(i - 1) % 3] and dropped iff i % 4 == 0.
expected_dropped=$FA_TMP/expected-dropped
expected_alive=$FA_TMP/expected-alive
: >"$expected_dropped"
: >"$expected_alive"
for ((i = 1; i <= CLIENTS; i++)); do
	line="${tag}d$i ${ports[(i - 1) % 3]}"
	if ((i % REVOKED_EVERY == 0)); then
		printf '%s\n' "$line" >>"$expected_dropped"
	else
		printf '%s\n' "$line" >>"$expected_alive"
	fi
done
dropped=$(awk '$1 == "dropped" { print $3, $4 }' "$out" | sort)
alive=$(awk '$1 == "alive" { print $2, $3 }' "$out" | sort)
missing=$(comm -23 <(sort "$expected_dropped") <(printf '%s\n' "$dropped"))
extra=$(comm -13 <(sort "$expected_dropped") <(printf '%s\n' "$dropped"))
[[ -z $missing ]] || fa_fail "revoked clients still connected:" $missing
[[ -z $extra ]] || fa_fail "clients disconnected without a revocation:" \
	$extra
fa_expect_eq "$alive" "$(sort "$expected_alive")" "clients still connected"

# Every broker took part: 50 drops split over the 3 ports.
for port in "${ports[@]}"; do
	count=$(awk -v p="$port" '$1 == "dropped" && $4 == p' "$out" | wc -l)
	((count > 0)) || fa_fail "broker on port $port disconnected nobody"
done

# Slowest revoked client, measured from the start of its API call.
slowest_ms=$(awk 'NR == FNR { start[$1] = $2; next }
	$1 == "dropped" { print $2 - start[$3] }' "$api_out" "$out" |
	sort -n | tail -n 1)
fa_log "50 of $CLIENTS clients disconnected on 3 brokers; slowest drop" \
	"$slowest_ms ms after the start of its API call"
printf 'ok: revocation fan-out over 3 brokers\n'
