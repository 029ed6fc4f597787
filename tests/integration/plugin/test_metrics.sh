#!/usr/bin/env bash
# Plugin: the counters on $SYS/fleetauth/ change after accepted and denied
# CONNECTs, denied SUBSCRIBEs and database changes. Only system_admin and
# system_operator can read them. metrics_interval 0 publishes nothing, and
# an out-of-range value stops the broker.
#
#   test_metrics.sh ENV_FILE
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# metric OUT NAME: the last value received for $SYS/fleetauth/NAME, or
# nothing when none arrived.
metric()
{
	awk -v t="\$SYS/fleetauth/$2" '$1 == "message" && $3 == t { v = $4 }
		END { print v }' "$1"
}

# wait_metric OUT NAME EXPRESSION SECONDS: true once the last value of NAME
# makes the arithmetic EXPRESSION over v true, for example 'v >= 3'.
wait_metric()
{
	local deadline=$(($(now_ms) + $4 * 1000)) v
	while (($(now_ms) < deadline)); do
		v=$(metric "$1" "$2")
		if [[ $v =~ ^-?[0-9]+$ ]] && (($3)); then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# expect_metric OUT NAME EXPECTED: waits up to 4 s (metrics_interval is 1)
# for NAME to reach EXPECTED.
expect_metric()
{
	local v
	wait_metric "$1" "$2" "v == $3" 4
	v=$(metric "$1" "$2")
	expect "metric $2" "$3" "${v:-none}"
}

test_metrics_connects()
{
	local out=$WORK/metrics.$RANDOM
	# A client id of its own, so that pub_check's observer below does not
	# take this session over.
	watch "$out" "$OPERATOR:metrics" "$OPERATOR" \
		"$(token_of "$OPERATOR")" '$SYS/fleetauth/#'
	local wpid=$WATCH_PID
	if ! wait_for "$out" '^subscribed [0-9]+ [012]$' 3; then
		fail "operator subscribes to \$SYS/fleetauth/#" \
			"$(tr '\n' ' ' <"$out")"
		stop_watch "$wpid"
		return
	fi
	pass "operator subscribes to \$SYS/fleetauth/#"
	# The operator's own CONNECT is the first accepted one.
	expect_metric "$out" connects/accepted 1
	local denied rejected
	denied=$(metric "$out" connects/denied)
	rejected=$(metric "$out" denials/token_rejected)
	expect "metric connects/denied before" 0 "${denied:-none}"
	expect "metric denials/token_rejected before" 0 "${rejected:-none}"

	local got
	got=$(connect_result "$DRV1" "$DRV1" "not-a-token")
	expect "CONNECT with garbage token refused" refused "$got"
	local tok
	tok=$(token_of "$DISP")
	got=$(connect_result "$DISP" "$DISP" "$tok")
	expect "dispatcher CONNECT accepted" connected "$got"
	got=$(connect_result "$DISP" "$DISP" "$tok")
	expect "dispatcher CONNECT with the same token" connected "$got"

	expect_metric "$out" connects/accepted 3
	expect_metric "$out" connects/accepted/token 3
	expect_metric "$out" connects/accepted/device 0
	expect_metric "$out" connects/denied 1
	expect_metric "$out" denials/token_rejected 1
	expect_metric "$out" denials/token_rejected/connect 1
	# The second CONNECT with the dispatcher's token hits the cache.
	expect_metric "$out" token_cache/hits 1
	expect_metric "$out" token_cache/misses 3
	# Closed sessions are removed on the next tick.
	expect_metric "$out" sessions/token 1
	expect_metric "$out" sessions/device 0
	expect_metric "$out" db/connection_losses 0
	local state
	state=$(metric "$out" db/state)
	expect "metric db/state" connected "${state:-none}"

	# Only platform operators read $SYS. Each rejected SUBSCRIBE is counted.
	sub_check deny "$DISP" '$SYS/fleetauth/#'
	sub_check deny "$FM" '$SYS/fleetauth/connects/accepted'
	sub_check deny "$TRUCK1" '$SYS/fleetauth/#'
	sub_check allow "$ADMIN" '$SYS/fleetauth/#'
	expect_metric "$out" denials/topic_denied/subscribe 3
	expect_metric "$out" acl/denied/subscribe 3
	pub_check deny "$ADMIN" '$SYS/fleetauth/connects/accepted' "$OPERATOR"

	# A change committed now is applied and its lag measured.
	local jti=jti-m$RANDOM change_id lag
	change_id=$(psql -X -q -A -t -v ON_ERROR_STOP=1 -c "INSERT INTO
		revoked_access_tokens (jti, expires_at) VALUES ('$jti',
		now() + interval '1 hour')" -c "SELECT max(id) FROM change_log" |
		tail -n 1)
	if wait_metric "$out" changes/last_id "v >= $change_id" 8; then
		pass "metric changes/last_id reaches change $change_id"
	else
		fail "metric changes/last_id reaches change $change_id" \
			"last value $(metric "$out" changes/last_id)"
	fi
	got=$(metric "$out" changes/applied)
	if [[ $got =~ ^[0-9]+$ ]] && ((got >= 1)); then
		pass "metric changes/applied counts the change ($got)"
	else
		fail "metric changes/applied counts the change" "got ${got:-none}"
	fi
	lag=$(metric "$out" changes/lag_ms)
	if [[ $lag =~ ^[0-9]+$ ]] && ((lag < 5000)); then
		pass "metric changes/lag_ms measured ($lag ms)"
	else
		fail "metric changes/lag_ms measured" "got ${lag:-none}"
	fi
	got=$(metric "$out" changes/lag_max_ms)
	if [[ $got =~ ^[0-9]+$ && $lag =~ ^[0-9]+$ ]] && ((got >= lag)); then
		pass "metric changes/lag_max_ms at least lag_ms ($got ms)"
	else
		fail "metric changes/lag_max_ms at least lag_ms" \
			"lag_max_ms ${got:-none}, lag_ms ${lag:-none}"
	fi
	stop_watch "$wpid"

	got=no
	grep -q 'fleetauth: metrics: connects accepted=3 denied=1;' \
		"$WORK/metrics.log" && got=yes
	expect "metrics summary logged" yes "$got"
}

test_metrics_disabled()
{
	start_broker metrics-off metrics_interval=0 failed_connect_limit=0 || {
		fail "broker with metrics_interval 0" "did not start"
		return
	}
	local out=$WORK/metrics-off.$RANDOM got
	watch "$out" "$OPERATOR" "$OPERATOR" "$(token_of "$OPERATOR")" \
		'$SYS/fleetauth/#'
	local wpid=$WATCH_PID
	wait_for "$out" '^subscribed [0-9]+ [012]$' 3
	got=published
	wait_for "$out" '^message [0-9]+ \$SYS/fleetauth/' 3 || got=none
	stop_watch "$wpid"
	expect "metrics_interval 0 publishes nothing" none "$got"
	got=no
	grep -q 'fleetauth: metrics:' "$WORK/metrics-off.log" || got=yes
	expect "metrics_interval 0 logs no summary" yes "$got"
	kill "$LAST_BROKER_PID" 2>/dev/null

	start_broker metrics-bad metrics_interval=3601 >/dev/null
	sleep 0.5
	got=no
	grep -q 'plugin_opt_metrics_interval' "$WORK/metrics-bad.log" \
		"$WORK/metrics-bad.out" 2>/dev/null &&
		! kill -0 "$LAST_BROKER_PID" 2>/dev/null && got=yes
	expect "metrics_interval 3601 stops the broker" yes "$got"
}

# A completed change fetch is what proves the database works, so with
# stale_after below poll_interval the feed must fetch often enough that an
# idle database never counts as stale.
test_short_stale_after()
{
	start_broker stale stale_after=1 metrics_interval=1 \
		failed_connect_limit=0 || {
		fail "broker with stale_after 1" "did not start"
		return
	}
	# Longer than the default poll_interval of 5 s.
	sleep 6
	local i connected=0
	for i in 1 2 3 4 5 6; do
		[[ $(connect_result "$DISP" "$DISP" "$(token_of "$DISP")") == \
			connected ]] && connected=$((connected + 1))
		sleep 0.4
	done
	expect "stale_after 1: CONNECTs to idle database" 6 "$connected"
	local stale
	stale=$(grep -c 'fleetauth: metrics: .* db=stale' "$WORK/stale.log")
	expect "stale_after 1: db/state never stale" 0 "$stale"
	kill "$LAST_BROKER_PID" 2>/dev/null
}

fa_plugin_setup "$@"
kill "${BROKER_PIDS[0]}" 2>/dev/null
for VERSION in 5 3; do
	start_broker metrics metrics_interval=1 failed_connect_limit=0 || {
		fail "v$VERSION broker with metrics_interval 1" "did not start"
		continue
	}
	test_metrics_connects
	kill "$LAST_BROKER_PID" 2>/dev/null
	wait "$LAST_BROKER_PID" 2>/dev/null
	mv "$WORK/metrics.log" "$WORK/metrics-v$VERSION.log"
done
VERSION=5
test_metrics_disabled
test_short_stale_after
fa_plugin_finish
