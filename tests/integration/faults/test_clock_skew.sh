#!/usr/bin/env bash
# Clock skew between fleetauthd, clients and the broker, simulated by
# minting tokens whose exp, nbf and iat are shifted: the plugin's checks
# see the same thing as after a clock jump of that size. The plugin allows
# leeway (default 30 s) on each claim and no more, and disconnects a
# connected client at exp + leeway.
#
# TOTP drift (one 30 s step either way) is tested by
# tests/integration/auth/test_totp.sh.
set -euo pipefail
. "$(dirname "$0")/../hostile/common.sh"
hostile_init "$@"
hostile_start_broker skew failed_connect_limit=0
hostile_wait_user "$H_DRIVER" driver

readonly LEEWAY=30
drv=$H_DRIVER

# Mints a token with claims shifted by the given offsets (seconds from now).
shifted()
{
	local iat=$1 nbf=$2 exp=$3 now
	now=$(date +%s)
	hostile_token "$drv" driver "$(jq -cn --argjson n "$now" \
		--argjson i "$iat" --argjson b "$nbf" --argjson e "$exp" \
		'{iat: ($n + $i), nbf: ($n + $b), exp: ($n + $e)}')"
}

hostile_expect_accepted "exp 15 s ago (inside the leeway)" "$drv" \
	"$(shifted -600 -600 -15)"
hostile_expect_refused "exp 45 s ago (beyond the leeway)" "$drv" \
	"$(shifted -600 -600 -45)"
hostile_expect_accepted "nbf 15 s ahead" "$drv" "$(shifted 0 15 600)"
hostile_expect_refused "nbf 45 s ahead" "$drv" "$(shifted 0 45 600)"
hostile_expect_accepted "iat 15 s ahead" "$drv" "$(shifted 15 0 600)"
hostile_expect_refused "iat 45 s ahead" "$drv" "$(shifted 45 45 600)"
hostile_expect_refused "clock 1 day behind the issuer" "$drv" \
	"$(shifted 86400 86400 87300)"
hostile_expect_refused "clock 1 day ahead of the issuer" "$drv" \
	"$(shifted -86400 -86400 -85500)"

# A client connected with a token that expired 20 s ago (accepted inside
# the leeway) is disconnected about 10 s later, at exp + leeway.
out=$FA_TMP/expiring.txt
mosquitto_sub -h 127.0.0.1 -p "$H_PORT" -i "$drv:expiring" -u "$drv" \
	-P "$(shifted -600 -600 -20)" -t "fleet/$H_CARRIER/drivers/$drv/inbox" \
	>"$out" 2>&1 &
sub_pid=$!
fa_on_exit "kill $sub_pid 2>/dev/null"
started=$SECONDS
fa_wait_for "grep -q 'Connection Accepted\\|$drv:expiring' '$H_BROKER_LOG'" 5
fa_wait_for "! fa_pid_running $sub_pid ||
	grep -q 'disconnect\\|refused\\|lost\\|authoris' '$out'" 25
took=$((SECONDS - started))
fa_log "client with a token 20 s past exp was dropped after $took s"
((took >= 5)) ||
	fa_fail "the client was dropped after $took s, before exp + $LEEWAY s"
fa_log "ok"
