#!/usr/bin/env bash
# Hostile and malformed requests: each gets the expected status and problem
# type, nothing is stored, and the server keeps responding.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
. "$(dirname "$0")/common.sh"

key=$FLEETAUTH_ADMIN_KEY
json=(-H 'Content-Type: application/json')
c1=bad-$SFX
create_carrier "$c1"

# Columns: expected status | problem slug | what | method | path | body |
# content type. The body is sent byte for byte.
cases=(
	"400|invalid-json|truncated JSON|POST|/v1/carriers|{\"id\": \"x\", \"name\":|application/json"
	"400|invalid-json|JSON array|POST|/v1/carriers|[1, 2]|application/json"
	"400|invalid-json|JSON string|POST|/v1/carriers|\"text\"|application/json"
	"400|invalid-json|two objects|POST|/v1/carriers|{\"id\": \"x-$SFX\", \"name\": \"X\"} {}|application/json"
	"400|invalid-json|trailing comma|POST|/v1/carriers|{\"id\": \"x-$SFX\", \"name\": \"X\",}|application/json"
	"400|invalid-json|empty body on a body route|POST|/v1/carriers||application/json"
	"400|invalid-json|NUL escape in a string|POST|/v1/carriers|{\"id\": \"x\\u0000y\", \"name\": \"X\"}|application/json"
	"400|unknown-field|extra field|POST|/v1/carriers|{\"id\": \"x-$SFX\", \"name\": \"X\", \"admin\": true}|application/json"
	"400|missing-field|missing name|POST|/v1/carriers|{\"id\": \"x-$SFX\"}|application/json"
	"400|invalid-field|null for a required field|POST|/v1/carriers|{\"id\": \"x-$SFX\", \"name\": null}|application/json"
	"400|invalid-field|number for a string|POST|/v1/carriers|{\"id\": 17, \"name\": \"X\"}|application/json"
	"400|invalid-field|object for a string|POST|/v1/carriers|{\"id\": {\"a\": 1}, \"name\": \"X\"}|application/json"
	"400|invalid-field|array for a string|POST|/v1/carriers|{\"id\": [\"x\"], \"name\": \"X\"}|application/json"
	"400|invalid-field|boolean for a string|POST|/v1/loads|{\"id\": \"x-$SFX\", \"carrier\": true}|application/json"
	"400|invalid-field|duplicate field|POST|/v1/carriers|{\"id\": \"x-$SFX\", \"id\": \"y-$SFX\", \"name\": \"X\"}|application/json"
	"400|invalid-field|id of 65 characters|POST|/v1/carriers|{\"id\": \"$(printf 'a%.0s' {1..65})\", \"name\": \"X\"}|application/json"
	"400|invalid-field|id with a hash|POST|/v1/loads|{\"id\": \"l#1\", \"carrier\": \"$c1\"}|application/json"
	"400|invalid-field|id with unicode|POST|/v1/loads|{\"id\": \"l\u00e9\", \"carrier\": \"$c1\"}|application/json"
	"400|invalid-field|reference of 201 characters|POST|/v1/loads|{\"id\": \"x-$SFX\", \"carrier\": \"$c1\", \"reference\": \"$(printf 'r%.0s' {1..201})\"}|application/json"
	"400|bad-request|body on a route without one|GET|/v1/carriers|{}|application/json"
	"415|unsupported-media-type|text/plain|POST|/v1/carriers|{\"id\": \"x-$SFX\", \"name\": \"X\"}|text/plain"
	"415|unsupported-media-type|form encoding|POST|/v1/carriers|id=x|application/x-www-form-urlencoded"
	"415|unsupported-media-type|JSON in latin1|POST|/v1/carriers|{\"id\": \"x-$SFX\", \"name\": \"X\"}|application/json; charset=iso-8859-1"
	"415|unsupported-media-type|application/jsonx|POST|/v1/carriers|{\"id\": \"x-$SFX\", \"name\": \"X\"}|application/jsonx"
	"405|method-not-allowed|DELETE on a collection|DELETE|/v1/carriers||"
	"404|not-found|unknown route|GET|/v1/no-such-thing||"
	"404|not-found|path parameter with a dot|GET|/v1/users/a.b||"
	"404|not-found|path parameter with an encoded hash|GET|/v1/users/a%23b||"
	"404|not-found|trailing slash|GET|/v1/users/||"
)

for entry in "${cases[@]}"; do
	IFS='|' read -r status slug what method path body type <<<"$entry"
	args=()
	if [[ -n $type ]]; then
		args+=(-H "Content-Type: $type")
	fi
	if [[ -n $body || $method == POST ]]; then
		args+=(--data-binary "$body")
	fi
	raw_api "$key" "$method" "$path" "${args[@]}"
	expect_problem "$status" "$slug" "$what"
	fa_expect_contains "$FA_HEADERS" "application/problem+json" \
		"$what: content type"
	fa_expect_not_contains "$FA_BODY" "SQL" "$what: body"
done

# 405 names the allowed methods.
raw_api "$key" DELETE /v1/carriers
fa_expect_contains "$FA_HEADERS" "Allow: POST, GET" "Allow header of a 405"

# Anonymous callers are turned away before their body is parsed.
raw_api "" POST /v1/carriers -H 'Content-Type: text/plain' \
	--data-binary '{"id": '
expect_problem 401 unauthenticated "anonymous request with a bad body"

# Content-Type application/json with parameters is fine.
raw_api "$key" POST /v1/carriers \
	-H 'Content-Type: application/json; charset=UTF-8' \
	--data-binary "{\"id\": \"ok-$SFX\", \"name\": \"OK\"}"
fa_expect_status 201 "JSON with charset=UTF-8"

# Invalid UTF-8 (a lone continuation byte).
printf '{"id": "u-%s", "name": "\x80"}' "$SFX" >"$FA_TMP/latin.json"
raw_api "$key" POST /v1/carriers "${json[@]}" \
	--data-binary @"$FA_TMP/latin.json"
expect_problem 400 invalid-json "invalid UTF-8"

# A raw NUL byte.
printf '{"id": "n-%s", "name": "a\0b"}' "$SFX" >"$FA_TMP/nul.json"
raw_api "$key" POST /v1/carriers "${json[@]}" --data-binary @"$FA_TMP/nul.json"
expect_problem 400 invalid-json "raw NUL byte"

# Deep nesting is rejected as invalid, not crashed on.
deep=$(printf '[%.0s' {1..5000})
raw_api "$key" POST /v1/carriers "${json[@]}" --data-binary "$deep"
expect_problem 400 invalid-json "5000 nested arrays"
fa_expect_contains "$(body_field .detail)" "nested too deeply" \
	"detail for 5000 nested arrays"
# Closed and inside a field, 1001 levels are still too deep; brackets in a
# string do not count.
deep=$(printf '[%.0s' {1..1000})1$(printf ']%.0s' {1..1000})
raw_api "$key" POST /v1/carriers "${json[@]}" --data-binary "{\"a\": $deep}"
expect_problem 400 invalid-json "1001 nested levels"
fa_expect_contains "$(body_field .detail)" "nested too deeply" \
	"detail for 1001 nested levels"
brackets=$(printf '[%.0s' {1..2000})
raw_api "$key" POST /v1/carriers "${json[@]}" \
	--data-binary "{\"id\": \"$brackets\"} trailing"
expect_problem 400 invalid-json "brackets in a string"
fa_expect_contains "$(body_field .detail)" "one JSON object" \
	"detail for brackets in a string"

# A 10 MiB body gets 413 before it is read, with and without
# "Expect: 100-continue", and the server stays up.
head -c $((10 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$FA_TMP/big.json"
raw_api "$key" POST /v1/carriers "${json[@]}" \
	--data-binary @"$FA_TMP/big.json"
expect_problem 413 too-large "10 MiB body"
raw_api "$key" POST /v1/carriers "${json[@]}" -H 'Expect:' \
	--data-binary @"$FA_TMP/big.json"
expect_problem 413 too-large "10 MiB body without Expect"
# A chunked body has no length to check up front, so the server closes the
# connection once the body passes the limit.
raw_api "$key" POST /v1/carriers "${json[@]}" \
	-H 'Transfer-Encoding: chunked' --data-binary @"$FA_TMP/big.json"
fa_expect_ne "$FA_STATUS" 201 "chunked 10 MiB body"
fa_expect_ne "$FA_STATUS" 200 "chunked 10 MiB body"
raw_api "" GET /healthz
fa_expect_status 200 "healthz after the large bodies"

# A body just under the limit is read and then validated.
padding=$(head -c 65000 /dev/zero | tr '\0' 'p')
raw_api "$key" POST /v1/carriers "${json[@]}" \
	--data-binary "{\"id\": \"p-$SFX\", \"name\": \"$padding\"}"
expect_problem 400 invalid-field "64 KB name"

# Nothing from the cases above was stored.
stored=$(fa_sql "SELECT count(*) FROM carriers WHERE id LIKE '%-$SFX'
	AND id NOT IN ('$c1', 'ok-$SFX')")
fa_expect_eq "$stored" 0 "carriers stored by rejected requests"
loads=$(fa_sql "SELECT count(*) FROM loads WHERE carrier_id = '$c1'")
fa_expect_eq "$loads" 0 "loads stored by rejected requests"

# Neither credentials nor bodies reach the log.
log=$FLEETAUTH_STACK_DIR/logs/fleetauthd.log
if grep -q -- "$FLEETAUTH_ADMIN_KEY" "$log"; then
	fa_fail "the API key appears in $log"
fi
if grep -q -- "$padding" "$log"; then
	fa_fail "a request body appears in $log"
fi
