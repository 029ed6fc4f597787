#!/usr/bin/env bash
# Control characters. A decoded path or query parameter with a control
# character (an encoded NUL above all) gets 400 instead of being cut short
# at the NUL. Free-text body fields reject bidirectional formatting
# characters (U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069) with 400
# naming the field.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
. "$(dirname "$0")/common.sh"

c1=ctl-$SFX
create_carrier "$c1"
create_user "x3-$SFX" driver "$c1"

# --- Encoded control characters in the path and the query.
raw_api "$FLEETAUTH_ADMIN_KEY" PATCH "/v1/users/x3-$SFX%00-ignored" \
	-H 'Content-Type: application/json' --data '{"status": "locked"}'
expect_problem 400 bad-request "PATCH with %00 in the path"
fa_expect_contains "$(body_field .detail)" "control character" \
	"detail for %00 in the path"
fa_expect_eq "$(fa_sql "SELECT status FROM users WHERE id = 'x3-$SFX'")" \
	active "user named before the %00"
for path in "/v1/users/x3-$SFX%0a" "/v1/users/x3-$SFX%7F" \
	"/v1/users?carrier=$c1%00x" "/v1/users?carrier=%1b$c1" \
	"/v1/users?car%01rier=$c1"; do
	raw_api "$FLEETAUTH_ADMIN_KEY" GET "$path"
	expect_problem 400 bad-request "GET $path"
done
# Ordinary escapes still decode.
raw_api "$FLEETAUTH_ADMIN_KEY" GET "/v1/users/x3%2D$SFX"
fa_expect_status 200 "GET with %2D in the path"
raw_api "$FLEETAUTH_ADMIN_KEY" GET "/v1/users?carrier=%63tl-$SFX"
fa_expect_status 200 "GET with an escape in a query value"
fa_expect_eq "$(body_field '.items | length')" 1 "users of the decoded carrier"

# --- Bidirectional formatting characters in free-text fields.
# Sends body to path and expects 400 invalid-field naming field.
check_text_field()
{
	local what=$1 field=$2 path=$3 body=$4
	fa_api POST "$path" "$body"
	expect_problem 400 invalid-field "$what"
	fa_expect_contains "$(body_field .detail)" "$field:" \
		"field named for $what"
	fa_expect_contains "$(body_field .detail)" "bidirectional" \
		"reason for $what"
}

for cp in 200E 200F 202A 202B 202C 202D 202E 2066 2067 2068 2069; do
	check_text_field "carrier name with U+$cp" name /v1/carriers \
		"{\"id\": \"bidi-$cp-$SFX\", \"name\": \"Acme \\u$cp Freight\"}"
done
check_text_field "device label with U+2066" label /v1/devices \
	"{\"carrier\": \"$c1\", \"kind\": \"truck\", \"label\": \"Truck \\u2066 7\"}"
check_text_field "load reference with U+200F" reference /v1/loads \
	"{\"id\": \"load-$SFX\", \"carrier\": \"$c1\",
	  \"reference\": \"PO \\u200f4711\"}"
check_text_field "API key name with U+202A" name /v1/api-keys \
	"{\"name\": \"ci \\u202a key\", \"scopes\": [\"loads:read\"]}"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM carriers
	WHERE id LIKE 'bidi-%-$SFX'")" 0 "carriers stored from rejected requests"

# Other non-ASCII text is accepted, including neighbours of the ranges.
fa_api POST /v1/carriers "{\"id\": \"uni-$SFX\",
	\"name\": \"Spedition M\\u00fcller \\u2065\\u2070 x\\u202f\"}"
fa_expect_status 201 "carrier name with other Unicode characters"
fa_api POST /v1/loads "{\"id\": \"load-$SFX\", \"carrier\": \"$c1\",
	\"reference\": \"\\u05e9\\u05dc\\u05d5\\u05dd 17\"}"
fa_expect_status 201 "load reference in Hebrew"
echo "PASS: $(basename "$0")"
