#!/usr/bin/env bash
# Users: creation, role rules, carrier isolation (404 for other carriers),
# identifier checks, conflicts, role and status changes, deletion and
# session revocation.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
. "$(dirname "$0")/common.sh"

c1=acme-$SFX
c2=globex-$SFX
create_carrier "$c1"
create_carrier "$c2"
create_user "fm1-$SFX" fleet_manager "$c1"
create_user "disp1-$SFX" dispatcher "$c1"
create_user "drv1-$SFX" driver "$c1"
create_user "drv2-$SFX" driver "$c2"
create_user "ops-$SFX" system_operator

fm1=$(token_for "fm1-$SFX" fleet_manager "$c1")
disp1=$(token_for "disp1-$SFX" dispatcher "$c1")
drv1=$(token_for "drv1-$SFX" driver "$c1")
ops=$(token_for "ops-$SFX" system_operator "")

new_user()
{
	jq -cn --arg id "$1" --arg role "$2" \
		'{username: $id, password: "long enough passphrase 42",
		  role: $role}'
}

# The response carries the user and never the password hash.
fa_api POST /v1/users "$(new_user "plat-$SFX" system_admin)"
fa_expect_status 201 "admin creates system_admin"
fa_expect_eq "$(body_field .carrier)" null "carrier of a platform user"
# shellcheck disable=SC2016 # a literal bcrypt prefix
fa_expect_not_contains "$FA_BODY" '$2' "user response"
hash=$(fa_sql "SELECT password_hash FROM users WHERE id = 'plat-$SFX'")
# shellcheck disable=SC2016 # a literal bcrypt prefix
fa_expect_contains "$hash" '$2b$' "stored password hash"

# A fleet manager creates a driver; the carrier defaults to their own.
fa_api_as "$fm1" POST /v1/users "$(new_user "drv3-$SFX" driver)"
fa_expect_status 201 "fleet manager creates driver"
fa_expect_eq "$(body_field .carrier)" "$c1" "default carrier of the driver"
fa_expect_eq "$(body_field .role)" driver "role of the new driver"
fa_expect_eq "$(body_field .status)" active "status of the new driver"

# Nobody grants a role above their own.
fa_api_as "$fm1" POST /v1/users "$(new_user "adm2-$SFX" system_admin)"
expect_problem 403 forbidden "fleet manager creates system_admin"
fa_api_as "$disp1" POST /v1/users \
	"$(new_user "fm2-$SFX" fleet_manager | jq -c ".carrier = \"$c1\"")"
expect_problem 403 forbidden "dispatcher creates fleet_manager"
fa_api_as "$disp1" POST /v1/users "$(new_user "drv4-$SFX" driver)"
fa_expect_status 201 "dispatcher creates driver"
# Leaf roles manage nobody, not even their own role.
fa_api_as "$drv1" POST /v1/users "$(new_user "drv5-$SFX" driver)"
expect_problem 403 forbidden "driver creates driver"
fa_api_as "$ops" POST /v1/users "$(new_user "ops2-$SFX" system_operator)"
expect_problem 403 forbidden "system_operator creates system_operator"
denied=$(fa_sql "SELECT count(*) FROM audit_events
	WHERE action = 'user.create' AND outcome = 'denied'
	AND target IN ('adm2-$SFX', 'fm2-$SFX', 'drv5-$SFX', 'ops2-$SFX')")
fa_expect_eq "$denied" 4 "audited denials of user.create"

# Objects of another carrier get 404.
fa_api_as "$fm1" POST /v1/users \
	"$(new_user "drv6-$SFX" driver | jq -c ".carrier = \"$c2\"")"
expect_problem 404 not-found "fleet manager creates user of another carrier"
fa_api_as "$fm1" GET "/v1/users/drv2-$SFX"
expect_problem 404 not-found "fleet manager reads user of another carrier"
fa_api_as "$fm1" GET "/v1/users/drv1-$SFX"
fa_expect_status 200 "fleet manager reads user of own carrier"
fa_api_as "$fm1" GET "/v1/users?carrier=$c2"
expect_problem 404 not-found "fleet manager lists another carrier"
fa_api_as "$fm1" GET /v1/users
fa_expect_status 200 "fleet manager lists users"
others=$(jq --arg c "$c1" '[.items[] | select(.carrier != $c)] | length' \
	<<<"$FA_BODY")
fa_expect_eq "$others" 0 "users of other carriers in the fleet manager list"
mine=$(jq '.items | length' <<<"$FA_BODY")
fa_expect_eq "$mine" 5 "users of $c1 in the fleet manager list"
fa_api_as "$fm1" PATCH "/v1/users/drv2-$SFX" '{"status": "locked"}'
expect_problem 404 not-found "fleet manager locks user of another carrier"

# Carrier rules of the target role.
fa_api POST /v1/users "$(new_user "plat2-$SFX" system_admin |
	jq -c ".carrier = \"$c1\"")"
expect_problem 400 invalid-field "platform role with a carrier"
fa_api POST /v1/users "$(new_user "drv7-$SFX" driver)"
expect_problem 400 missing-field "carrier role without a carrier"
fa_api POST /v1/users "$(new_user "drv8-$SFX" driver |
	jq -c '.carrier = "no-such-carrier"')"
expect_problem 404 not-found "carrier that does not exist"

# Identifiers that could reach an MQTT topic are rejected at creation.
for bad in 'a/b' 'a+b' 'a#b' 'a b' '' 'drv.x' "$(printf 'x%.0s' {1..65})"; do
	fa_api POST /v1/users "$(new_user "$bad" driver |
		jq -c ".carrier = \"$c1\"")"
	expect_problem 400 invalid-field "username '$bad'"
done
fa_api POST /v1/users "{\"username\": \"drv\\u0000x\",
	\"password\": \"long enough passphrase 42\", \"role\": \"driver\",
	\"carrier\": \"$c1\"}"
expect_problem 400 invalid-json "username with NUL"
fa_api POST /v1/users "$(new_user "drv9-$SFX" pilot |
	jq -c ".carrier = \"$c1\"")"
expect_problem 400 invalid-field "unknown role"
fa_api POST /v1/users "$(new_user "drv9-$SFX" driver |
	jq -c ".carrier = \"$c1\" | .password = \"short\"")"
expect_problem 400 invalid-field "password below the policy"
count=$(fa_sql "SELECT count(*) FROM users WHERE id LIKE '%$SFX%'
	AND id NOT IN ('fm1-$SFX', 'disp1-$SFX', 'drv1-$SFX', 'drv2-$SFX',
	'ops-$SFX', 'plat-$SFX', 'drv3-$SFX', 'drv4-$SFX')")
fa_expect_eq "$count" 0 "users created by rejected requests"

# One id space for users and devices.
fa_api POST /v1/users "$(new_user "drv1-$SFX" driver |
	jq -c ".carrier = \"$c1\"")"
expect_problem 409 conflict "duplicate username"
fa_sql "INSERT INTO principals (id, kind) VALUES ('dev-$SFX', 'device')"
fa_api POST /v1/users "$(new_user "dev-$SFX" driver |
	jq -c ".carrier = \"$c1\"")"
expect_problem 409 conflict "username taken by a device"

# Role and status changes.
fa_api_as "$fm1" PATCH "/v1/users/fm1-$SFX" '{"status": "locked"}'
expect_problem 403 forbidden "fleet manager locks themselves"
fa_api_as "$disp1" PATCH "/v1/users/fm1-$SFX" '{"role": "driver"}'
expect_problem 403 forbidden "dispatcher demotes fleet manager"
fa_api_as "$fm1" PATCH "/v1/users/drv3-$SFX" '{"role": "system_admin"}'
expect_problem 403 forbidden "fleet manager promotes to system_admin"
fa_api_as "$fm1" PATCH "/v1/users/drv3-$SFX" '{"role": "dispatcher"}'
fa_expect_status 200 "fleet manager promotes driver to dispatcher"
fa_expect_eq "$(body_field .role)" dispatcher "role after PATCH"
fa_api PATCH "/v1/users/drv3-$SFX" '{"role": "system_admin"}'
expect_problem 400 invalid-field "platform role for a carrier user"
fa_api PATCH "/v1/users/drv3-$SFX" '{"status": "deleted"}'
expect_problem 400 invalid-field "status deleted through PATCH"
fa_api PATCH "/v1/users/drv3-$SFX" '{}'
expect_problem 400 missing-field "empty PATCH"

# A locked user's access token stops working at once.
drv4=$(token_for "drv4-$SFX" driver "$c1")
fa_api_as "$drv4" POST "/v1/users/drv4-$SFX/revoke-sessions"
fa_expect_status 200 "user revokes their own sessions"
fa_api_as "$fm1" PATCH "/v1/users/drv4-$SFX" '{"status": "locked"}'
fa_expect_status 200 "fleet manager locks driver"
fa_expect_eq "$(body_field .status)" locked "status after lock"
fa_api_as "$drv4" POST "/v1/users/drv4-$SFX/revoke-sessions"
expect_problem 401 unauthenticated "token of a locked user"

# Revoking sessions revokes every refresh family and notifies the brokers.
fa_sql "INSERT INTO refresh_families (id, user_id, amr, expires_at)
	VALUES ('fam1-$SFX', 'drv1-$SFX', '{pwd}', now() + interval '1 day'),
	       ('fam2-$SFX', 'drv1-$SFX', '{pwd}', now() + interval '1 day')"
with_family=$(token_for "drv1-$SFX" driver "$c1" "{\"fam\": \"fam1-$SFX\"}")
fa_api_as "$with_family" GET "/v1/users/drv1-$SFX"
fa_expect_status 200 "driver reads themselves before revocation"
fa_api_as "$with_family" GET "/v1/users/fm1-$SFX"
expect_problem 403 forbidden "driver reads another user"
before=$(fa_sql "SELECT coalesce(max(id), 0) FROM change_log")
fa_api_as "$fm1" POST "/v1/users/drv1-$SFX/revoke-sessions"
fa_expect_status 200 "fleet manager revokes driver sessions"
fa_expect_eq "$(body_field .revoked_families)" 2 "revoked families"
open=$(fa_sql "SELECT count(*) FROM refresh_families
	WHERE user_id = 'drv1-$SFX' AND revoked_at IS NULL")
fa_expect_eq "$open" 0 "open families after revocation"
changes=$(fa_sql "SELECT count(*) FROM change_log WHERE id > $before
	AND kind = 'family' AND subject IN ('fam1-$SFX', 'fam2-$SFX')")
fa_expect_eq "$changes" 2 "change_log rows for the revoked families"
fa_api_as "$with_family" GET "/v1/users/drv1-$SFX"
expect_problem 401 unauthenticated "token of a revoked family"

# Deletion keeps the row, hides it from listings and ends its tokens.
fa_api_as "$fm1" DELETE "/v1/users/drv1-$SFX"
fa_expect_status 200 "fleet manager deletes driver"
fa_expect_eq "$(body_field .status)" deleted "status after delete"
fa_api_as "$fm1" GET "/v1/users/drv1-$SFX"
fa_expect_status 200 "deleted user can still be read"
fa_api_as "$fm1" GET "/v1/users"
listed=$(jq --arg id "drv1-$SFX" '[.items[] | select(.id == $id)] | length' \
	<<<"$FA_BODY")
fa_expect_eq "$listed" 0 "deleted user in the default listing"
fa_api_as "$fm1" GET "/v1/users?status=deleted"
listed=$(jq --arg id "drv1-$SFX" '[.items[] | select(.id == $id)] | length' \
	<<<"$FA_BODY")
fa_expect_eq "$listed" 1 "deleted user in the status=deleted listing"
fa_api_as "$drv1" GET "/v1/loads"
expect_problem 401 unauthenticated "token of a deleted user"
fa_api_as "$fm1" PATCH "/v1/users/drv1-$SFX" '{"status": "active"}'
expect_problem 404 not-found "PATCH of a deleted user"

# Filters and paging.
fa_api GET "/v1/users?carrier=$c1&role=fleet_manager"
fa_expect_eq "$(jq -r '[.items[].id] | join(",")' <<<"$FA_BODY")" \
	"fm1-$SFX" "users filtered by carrier and role"
fa_api GET "/v1/users?carrier=$c1&limit=2"
fa_expect_eq "$(jq '.items | length' <<<"$FA_BODY")" 2 "page size"
next=$(body_field .next)
fa_expect_ne "$next" null "next cursor of a full page"
fa_api GET "/v1/users?carrier=$c1&limit=2&after=$next"
first=$(jq -r '.items[0].id' <<<"$FA_BODY")
[[ $first > $next ]] || fa_fail "second page starts at $first, not after $next"
fa_api GET "/v1/users?role=pilot"
expect_problem 400 invalid-parameter "unknown role filter"
fa_api GET "/v1/users?limit=501"
expect_problem 400 invalid-parameter "limit above 500"
