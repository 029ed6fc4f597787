#!/usr/bin/env bash
# Client addresses behind a reverse proxy. A second fleetauthd with
# trusted_proxies takes the client address from X-Forwarded-For when the TCP
# peer is a trusted proxy, so 20 failed logins lock one forwarded address
# and not every client of the proxy. The stack's own fleetauthd, without
# trusted_proxies, ignores the header. metrics_allow keeps checking the TCP
# peer.
. "$(dirname "$0")/common.sh"
auth_init "$@"

carrier=$(auth_carrier proxy)
user=$(auth_user drv driver "$carrier")

# Forwarded addresses from the documentation ranges, random per run.
locked=203.0.113.$((RANDOM % 250 + 1))
other=198.51.100.$((RANDOM % 250 + 1))
for address in "$locked" "$other" 127.0.0.1 127.0.0.2; do
	fa_sql "DELETE FROM login_failures WHERE scope = 'address'
		AND key = '$address'" >/dev/null
	fa_on_exit "fa_sql \"DELETE FROM login_failures WHERE scope = 'address'
		AND key = '$address'\" >/dev/null"
done

port=$(fa_free_port)
config=$FA_TMP/fleetauthd.conf
sed "s/^listen_port = .*/listen_port = $port/" "$FLEETAUTHD_CONFIG" >"$config"
printf 'trusted_proxies = 127.0.0.1, 127.0.0.2/32, ::1\n' >>"$config"
chmod 600 "$config"
setsid "$FLEETAUTHD" -c "$config" serve </dev/null \
	>"$FA_TMP/fleetauthd.log" 2>&1 &
proxy_pid=$!
fa_on_exit "kill $proxy_pid 2>/dev/null; wait $proxy_pid 2>/dev/null"
PROXY_URL=http://127.0.0.1:$port
fa_wait_for "curl -sf -o /dev/null '$PROXY_URL/healthz'" 10
# libmicrohttpd warns at start-up unless its logger is the first option.
fa_expect_not_contains "$(cat "$FA_TMP/fleetauthd.log")" '"level":"warning"' \
	"start-up log of fleetauthd"

# Sends POST /v1/auth/login to url from source with X-Forwarded-For value
# (none when empty). Sets FA_STATUS and FA_BODY.
proxy_login()
{
	local url=$1 source=$2 forwarded=$3 username=$4 password=$5
	local args=(-s -o "$FA_TMP/body" -w '%{http_code}'
		--max-time "$FA_CLIENT_TIMEOUT" --interface "$source"
		-H 'Content-Type: application/json')
	[[ -z $forwarded ]] || args+=(-H "X-Forwarded-For: $forwarded")
	FA_STATUS=$(curl "${args[@]}" --data-binary "$(jq -cn \
		--arg u "$username" --arg p "$password" \
		'{username: $u, password: $p}')" "$url/v1/auth/login") ||
		FA_STATUS=000
	FA_BODY=$(cat "$FA_TMP/body")
}

# Prints the address of the newest successful login audit of user.
last_login_address()
{
	fa_sql "SELECT address FROM audit_events WHERE action = 'login'
		AND target = '$user' AND outcome = 'success'
		ORDER BY id DESC LIMIT 1"
}

# --- 20 failures forwarded for one client lock that address only.
for i in $(seq 1 20); do
	proxy_login "$PROXY_URL" 127.0.0.1 "$locked" "spray-$i-$AUTH_RUN" \
		"wrong password"
	fa_expect_status 401 "failure $i forwarded for $locked"
done
proxy_login "$PROXY_URL" 127.0.0.1 "$locked" "$user" "$AUTH_PASSWORD"
fa_expect_status 429 "login forwarded for the locked $locked"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM login_failures
	WHERE scope = 'address' AND key = '$locked'
	AND locked_until > now()")" 1 "lock of the forwarded address"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM login_failures
	WHERE scope = 'address' AND key = '127.0.0.1'")" 0 \
	"failures counted for the proxy address"
proxy_login "$PROXY_URL" 127.0.0.1 "$other" "$user" "$AUTH_PASSWORD"
fa_expect_status 200 "login forwarded for $other"
fa_expect_eq "$(last_login_address)" "$other" "audited address"

# --- Entry selection: the right-most entry that is not a trusted proxy.
proxy_login "$PROXY_URL" 127.0.0.1 "$other, 127.0.0.2" "$user" \
	"$AUTH_PASSWORD"
fa_expect_status 200 "login through two proxies"
fa_expect_eq "$(last_login_address)" "$other" "address behind two proxies"
proxy_login "$PROXY_URL" 127.0.0.1 "$locked, $other" "$user" \
	"$AUTH_PASSWORD"
fa_expect_status 200 "login with a client-supplied left entry"
fa_expect_eq "$(last_login_address)" "$other" \
	"address with a client-supplied left entry"
proxy_login "$PROXY_URL" 127.0.0.1 "$other, not-an-address" "$user" \
	"$AUTH_PASSWORD"
fa_expect_status 200 "login with an invalid forwarded entry"
fa_expect_eq "$(last_login_address)" 127.0.0.1 \
	"address with an invalid forwarded entry"

# --- A peer outside trusted_proxies: the header is ignored.
proxy_login "$PROXY_URL" "$AUTH_ADDRESS" "$locked" "$user" "$AUTH_PASSWORD"
fa_expect_status 200 "forwarded header from an untrusted peer"
fa_expect_eq "$(last_login_address)" "$AUTH_ADDRESS" \
	"address of an untrusted peer"

# --- Without trusted_proxies the stack's fleetauthd ignores the header.
proxy_login "$FLEETAUTH_URL" "$AUTH_ADDRESS" "$locked" "$user" \
	"$AUTH_PASSWORD"
fa_expect_status 200 "forwarded header without trusted_proxies"
fa_expect_eq "$(last_login_address)" "$AUTH_ADDRESS" \
	"address without trusted_proxies"

# --- metrics_allow (default 127.0.0.1,::1) checks the TCP peer.
status=$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.1 \
	-H "X-Forwarded-For: $locked" "$PROXY_URL/metrics")
fa_expect_eq "$status" 200 "metrics from an allowed peer forwarding"
status=$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.2 \
	-H 'X-Forwarded-For: 127.0.0.1' "$PROXY_URL/metrics")
fa_expect_eq "$status" 403 "metrics from another peer forwarding 127.0.0.1"

# --- An invalid trusted_proxies entry stops start-up with its name.
printf 'trusted_proxies = 10.0.0.0/33\n' >>"$config"
rc=0
"$FLEETAUTHD" -c "$config" serve >"$FA_TMP/bad.out" 2>&1 || rc=$?
fa_expect_ne "$rc" 0 "exit code with an invalid trusted_proxies"
fa_expect_contains "$(cat "$FA_TMP/bad.out")" "10.0.0.0/33" \
	"message for an invalid trusted_proxies"
echo "PASS: $(basename "$0")"
