#!/usr/bin/env bash
# Hostile HTTP bodies against fleetauthd's public login route: invalid
# UTF-8, NUL bytes (raw and escaped), deep nesting, repeated fields, wrong
# content types, oversized and endless bodies. Every reply must be a 4xx
# problem; none may be a 5xx or a hang, and the service keeps running.
# Requests come from a random 127.0.0.0/8 address so that the per-address
# login throttle does not affect other tests.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
for tool in curl jq head python3; do
	command -v "$tool" >/dev/null || fa_skip "$tool is not installed"
done
address=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
fa_on_exit "fa_sql \"DELETE FROM login_failures WHERE scope = 'address'
	AND key = '$address'\" >/dev/null"

# Posts the file body with content type; fails unless the status is
# expected.
expect_reply()
{
	local what=$1 expected=$2 file=$3 type=${4:-application/json}
	local status
	status=$(curl -s -o "$FA_TMP/reply" -w '%{http_code}' --max-time 15 \
		--interface "$address" -X POST -H "Content-Type: $type" \
		--data-binary "@$file" "$FLEETAUTH_URL/v1/auth/login") ||
		status=000
	fa_expect_eq "$status" "$expected" \
		"status for $what: $(head -c 200 "$FA_TMP/reply")"
	if [[ $status == 4?? ]]; then
		jq -e '.type and .title and .status' "$FA_TMP/reply" \
			>/dev/null ||
			fa_fail "reply for $what is not a problem:" \
				"$(head -c 200 "$FA_TMP/reply")"
	fi
}

body=$FA_TMP/body
printf '{"username": "a\xff\xfe", "password": "x"}' >"$body"
expect_reply "invalid UTF-8" 400 "$body"
printf '{"username": "\xc0\xaf", "password": "x"}' >"$body"
expect_reply "overlong UTF-8" 400 "$body"
printf '{"username": "a\x00b", "password": "x"}' >"$body"
expect_reply "raw NUL byte" 400 "$body"
printf '{"username": "stack-admin\\u0000x", "password": "x"}' >"$body"
expect_reply "escaped NUL in the username" 400 "$body"
printf '{"username": "u", "password": "x\\u0000y"}' >"$body"
expect_reply "escaped NUL in the password" 400 "$body"
printf '{"username": "a", "username": "b", "password": "x"}' >"$body"
expect_reply "repeated field" 400 "$body"
printf '{"username": "a", "password": "x", "admin": true}' >"$body"
expect_reply "unknown field" 400 "$body"
printf '["username", "password"]' >"$body"
expect_reply "array instead of object" 400 "$body"
printf '{"username": "a", "password": ' >"$body"
expect_reply "truncated JSON" 400 "$body"
python3 -c 'print("[" * 100000 + "]" * 100000)' >"$body"
expect_reply "100000 nested arrays" 413 "$body"
{
	printf '{"username": '
	python3 -c 'print("[" * 5000 + "]" * 5000, end="")'
	printf ', "password": "x"}'
} >"$body"
expect_reply "5000 nested arrays in a field" 400 "$body"
printf '{"username": "a", "password": "%s"}' "$(head -c 2000 /dev/zero |
	tr '\0' 'p')" >"$body"
expect_reply "2 KB password (over the 1024-byte limit)" 400 "$body"
printf '{"username": "a", "password": "%s"}' "$(head -c 100000 /dev/zero |
	tr '\0' 'p')" >"$body"
expect_reply "100 KB password (over max_body_bytes)" 413 "$body"
printf '{"username": "a", "password": "x"}' >"$body"
expect_reply "text/plain body" 415 "$body" text/plain
expect_reply "JSON with a charset" 401 "$body" \
	'application/json; charset=utf-8'

# A 10 MB body, and an endless chunked body: the service must cut it off
# (413, or a closed connection) long before curl gives up after 20 s.
head -c 10000000 /dev/zero | tr '\0' ' ' >"$body"
expect_reply "10 MB of spaces" 413 "$body"
started=$SECONDS
status=$( (printf '{"username": "a", "password": "'; yes x | tr -d '\n') |
	curl -s -o /dev/null -w '%{http_code}' --max-time 20 \
		--interface "$address" -X POST \
		-H 'Content-Type: application/json' -H 'Expect:' -T - \
		"$FLEETAUTH_URL/v1/auth/login") || true
took=$((SECONDS - started))
fa_log "endless chunked body: status ${status:-none} after $took s"
[[ $status == 413 || $status == 000 ]] ||
	fa_fail "status for an endless chunked body: expected 413 or a" \
		"closed connection, got $status"
((took < 15)) ||
	fa_fail "fleetauthd read an endless body for $took s without" \
		"cutting it off"

# The service still replies.
status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
	"$FLEETAUTH_URL/healthz") || status=000
fa_expect_eq "$status" 200 "GET /healthz after the hostile bodies"
fa_log "ok"
