#!/usr/bin/env bash
# Scale, short version: 200 token clients spread over 3 brokers that follow
# one database. One UPDATE disables 50 of their users. Every broker must
# disconnect exactly the clients of those users within 10 s and keep every
# other client connected. The test starts its own 3-broker stack, because
# the shared test stack has one broker.
#
#   test_revocation_fanout.sh ENV_FILE
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
fa_load_env "$@"

readonly CLIENTS=200
readonly REVOKED_EVERY=4 # users 4, 8, ..., 200 are disabled: 50 users
readonly DISCONNECT_TIMEOUT=10
readonly SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)

build=${FLEETAUTH_BUILD_DIR:-}
[[ -n $build ]] || fa_fail "FLEETAUTH_BUILD_DIR is not set in $FLEETAUTH_ENV"
watch=$build/tools/scale/fleetauth-scale-watch
mint=$build/tools/bench/fleetauth-bench-mint
[[ -x $watch ]] || fa_fail "$watch not found: build the" \
	"fleetauth-scale-watch target in $build"
[[ -x $mint ]] || fa_fail "$mint not found: build the" \
	"fleetauth-bench-mint target in $build"

stack=$FA_TMP/stack
"$SRC_DIR/tools/stack" up "$stack" --brokers 3 --fast-bcrypt \
	--build "$build" >"$FA_TMP/stack-up.log" 2>&1 ||
	fa_fail "tools/stack up --brokers 3 failed:" \
		"$(tail -n 20 "$FA_TMP/stack-up.log")"
fa_on_exit "'$SRC_DIR/tools/stack' down '$stack' >/dev/null 2>&1"
# From here on psql, MQTT_PORTS and the signing key are the private stack's.
. "$stack/env"
IFS=, read -r -a ports <<<"$MQTT_PORTS"
fa_expect_eq "${#ports[@]}" 3 "brokers in the private stack"

tag=f$(openssl rand -hex 3)
fa_sql "INSERT INTO carriers (id, name) VALUES ('$tag', 'fanout test');
	INSERT INTO principals (id, kind)
		SELECT '${tag}d' || i, 'user'
		FROM generate_series(1, $CLIENTS) i;
	INSERT INTO users (id, carrier_id, role, password_hash)
		SELECT '${tag}d' || i, '$tag', 'driver', 'x'
		FROM generate_series(1, $CLIENTS) i;" ||
	fa_fail "inserting $CLIENTS drivers failed"

# Each broker has loaded its snapshot before it listened, so it must learn
# about these users from change_log. Wait until broker 1 accepts the last.
clients=$FA_TMP/clients
"$mint" --key "$FLEETAUTH_SIGNING_KEY" --kid "$(fa_current_kid)" \
	--prefix "${tag}d" --count "$CLIENTS" --carrier "$tag" \
	--issuer "$FLEETAUTH_ISSUER" --audience "$FLEETAUTH_AUDIENCE" \
	>"$clients" || fa_fail "fleetauth-bench-mint failed"
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

commit_ms=$(date +%s%3N)
fa_sql "UPDATE users SET status = 'disabled'
	WHERE carrier_id = '$tag'
	AND substr(id, length('${tag}d') + 1)::int % $REVOKED_EVERY = 0" ||
	fa_fail "disabling the users failed"

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

last_drop_ms=$(awk '$1 == "dropped" { print $2 }' "$out" | sort -n |
	tail -n 1)
fa_log "50 of $CLIENTS clients disconnected on 3 brokers; last drop" \
	"$((last_drop_ms - commit_ms)) ms after the UPDATE started"
printf 'ok: revocation fan-out over 3 brokers\n'
