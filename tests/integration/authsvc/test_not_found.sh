#!/usr/bin/env bash
# 404 responses reveal nothing. On every route a missing object and an
# object of another carrier get byte-identical problem bodies, and requests
# for another carrier's user are audited as request.authorize denied.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
. "$(dirname "$0")/common.sh"

c1=nf1-$SFX
c2=nf2-$SFX
create_carrier "$c1"
create_carrier "$c2"
create_user "fm1-$SFX" fleet_manager "$c1"
create_user "drv2-$SFX" driver "$c2"
create_user "ops-$SFX" system_operator
fm1=$(token_for "fm1-$SFX" fleet_manager "$c1")

# Objects of carrier c2.
fa_api POST /v1/devices "$(jq -cn --arg c "$c2" \
	'{carrier: $c, kind: "truck", label: "other carrier"}')"
fa_expect_status 201 "create device of $c2"
device=$(body_field .device_id)
fa_api POST /v1/loads "{\"id\": \"load-$SFX\", \"carrier\": \"$c2\"}"
fa_expect_status 201 "create load of $c2"
fa_api POST /v1/api-keys "$(jq -cn --arg c "$c2" \
	'{name: "other carrier", scopes: ["loads:read"], role: "dispatcher",
	  carrier: $c}')"
fa_expect_status 201 "create API key of $c2"
api_key=$(body_field .id)
fa_sql "INSERT INTO device_keys (id, user_id, public_pem)
	VALUES ('dk-$SFX', 'drv2-$SFX', 'not a key')" >/dev/null

# Sends method path (with an optional body) as fm1 and prints the body.
body_as_fm1()
{
	fa_api_as "$fm1" "$@"
	fa_expect_status 404 "$1 $2"
	printf '%s\n' "$FA_BODY"
}

# Compares the responses for an object of c2 and a missing one: method,
# path, the other carrier's id and an optional body. OBJ in the path or
# the body stands for the id.
check_route()
{
	local method=$1 pattern=$2 id=$3 body=${4-} other missing
	local with_id=() without_id=()
	if (($# >= 4)); then
		with_id=("${body//OBJ/$id}")
		without_id=("${body//OBJ/none-$SFX}")
	fi
	other=$(body_as_fm1 "$method" "${pattern/OBJ/$id}" "${with_id[@]}")
	missing=$(body_as_fm1 "$method" "${pattern/OBJ/none-$SFX}" \
		"${without_id[@]}")
	fa_expect_eq "$other" "$missing" "404 body of $method $pattern"
	fa_expect_contains "$other" '"type":"https://fleetauth.dev/problems/not-found"' \
		"404 type of $method $pattern"
}

check_route GET /v1/users/OBJ "drv2-$SFX"
check_route PATCH /v1/users/OBJ "drv2-$SFX" '{"status": "locked"}'
check_route DELETE /v1/users/OBJ "drv2-$SFX"
check_route POST /v1/users/OBJ/revoke-sessions "drv2-$SFX"
check_route GET /v1/users/OBJ/export "drv2-$SFX"
check_route GET /v1/users?carrier=OBJ "$c2"
check_route GET /v1/carriers/OBJ "$c2"
check_route GET /v1/devices/OBJ "$device"
check_route POST /v1/devices/OBJ/revoke "$device" '{"reason": "lost"}'
check_route POST /v1/devices/OBJ/enrollment-code "$device"
check_route PUT /v1/loads/OBJ/assignment "load-$SFX" \
	"{\"driver\": \"drv2-$SFX\"}"
check_route DELETE /v1/loads/OBJ/assignment "load-$SFX"
check_route DELETE /v1/api-keys/OBJ "$api_key"
check_route DELETE /v1/mfa/device-keys/OBJ "dk-$SFX"
check_route POST /v1/users "$c2" \
	"{\"username\": \"x-$SFX\", \"password\": \"long enough passphrase 42\",
	  \"role\": \"driver\", \"carrier\": \"OBJ\"}"

# The other carrier's user is untouched.
fa_expect_eq "$(fa_sql "SELECT status FROM users WHERE id = 'drv2-$SFX'")" \
	active "status of the other carrier's user"

# Every request for the other carrier's user is audited, once each.
for path in "/v1/users/drv2-$SFX" "/v1/users/drv2-$SFX/revoke-sessions" \
	"/v1/users/drv2-$SFX/export"; do
	count=$(fa_sql "SELECT count(*) FROM audit_events
		WHERE action = 'request.authorize' AND outcome = 'denied'
		AND actor = 'fm1-$SFX' AND target = '$path'")
	case $path in
	*/revoke-sessions | */export) expected=1 ;;
	*) expected=3 ;; # GET, PATCH and DELETE
	esac
	fa_expect_eq "$count" "$expected" "request.authorize audits of $path"
done
echo "PASS: $(basename "$0")"
