#!/usr/bin/env bash
# User management needs a role strictly above the user's current and new
# role: nobody creates, changes, deletes or revokes the sessions of a peer,
# and nobody promotes a user to their own role. system_admin is the one
# role that manages its peers. API keys follow the rule with their role.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
. "$(dirname "$0")/common.sh"

c1=roles-$SFX
create_carrier "$c1"
create_user "fm1-$SFX" fleet_manager "$c1"
create_user "fm2-$SFX" fleet_manager "$c1"
create_user "disp1-$SFX" dispatcher "$c1"
create_user "disp2-$SFX" dispatcher "$c1"
create_user "drv1-$SFX" driver "$c1"
create_user "adm1-$SFX" system_admin
create_user "adm2-$SFX" system_admin

fm1=$(token_for "fm1-$SFX" fleet_manager "$c1")
disp1=$(token_for "disp1-$SFX" dispatcher "$c1")
adm1=$(token_for "adm1-$SFX" system_admin "")
start=$(fa_sql "SELECT coalesce(max(id), 0) FROM audit_events")

new_user()
{
	jq -cn --arg id "$1" --arg role "$2" --arg carrier "$3" \
		'{username: $id, password: "long enough passphrase 42",
		  role: $role}
		 + (if $carrier == "" then {} else {carrier: $carrier} end)'
}

# Prints "role status" of user id.
user_state()
{
	fa_sql "SELECT role || ' ' || status FROM users WHERE id = '$1'"
}

# --- A dispatcher manages drivers only.
fa_api_as "$disp1" POST /v1/users "$(new_user "disp3-$SFX" dispatcher "")"
expect_problem 403 forbidden "dispatcher creates dispatcher"
fa_api_as "$disp1" PATCH "/v1/users/disp2-$SFX" '{"status": "locked"}'
expect_problem 403 forbidden "dispatcher locks dispatcher"
fa_api_as "$disp1" DELETE "/v1/users/disp2-$SFX"
expect_problem 403 forbidden "dispatcher deletes dispatcher"
fa_api_as "$disp1" POST "/v1/users/disp2-$SFX/revoke-sessions"
expect_problem 403 forbidden "dispatcher revokes dispatcher sessions"
fa_expect_eq "$(user_state "disp2-$SFX")" "dispatcher active" \
	"dispatcher after the denied changes"
fa_api_as "$disp1" PATCH "/v1/users/drv1-$SFX" '{"role": "dispatcher"}'
expect_problem 403 forbidden "dispatcher promotes driver to dispatcher"
fa_expect_eq "$(user_state "drv1-$SFX")" "driver active" \
	"driver after the denied promotion"
fa_api_as "$disp1" PATCH "/v1/users/drv1-$SFX" '{"status": "locked"}'
fa_expect_status 200 "dispatcher locks driver"
fa_api_as "$disp1" PATCH "/v1/users/drv1-$SFX" '{"status": "active"}'
fa_expect_status 200 "dispatcher unlocks driver"

# --- A fleet manager manages dispatchers and drivers, not fleet managers.
fa_api_as "$fm1" POST /v1/users "$(new_user "fm3-$SFX" fleet_manager "")"
expect_problem 403 forbidden "fleet manager creates fleet manager"
fa_api_as "$fm1" PATCH "/v1/users/fm2-$SFX" '{"status": "locked"}'
expect_problem 403 forbidden "fleet manager locks fleet manager"
fa_api_as "$fm1" PATCH "/v1/users/disp2-$SFX" '{"role": "fleet_manager"}'
expect_problem 403 forbidden "fleet manager promotes to fleet manager"
fa_api_as "$fm1" DELETE "/v1/users/fm2-$SFX"
expect_problem 403 forbidden "fleet manager deletes fleet manager"
fa_expect_eq "$(user_state "fm2-$SFX")" "fleet_manager active" \
	"fleet manager after the denied changes"
fa_api_as "$fm1" POST /v1/users "$(new_user "disp4-$SFX" dispatcher "")"
fa_expect_status 201 "fleet manager creates dispatcher"
fa_api_as "$fm1" PATCH "/v1/users/drv1-$SFX" '{"role": "dispatcher"}'
fa_expect_status 200 "fleet manager promotes driver to dispatcher"
denied=$(fa_sql "SELECT count(*) FROM audit_events WHERE id > $start
	AND outcome = 'denied' AND action LIKE 'user.%'")
fa_expect_eq "$denied" 9 "audited denials"

# --- system_admin manages every role, its own included, but not itself.
fa_api_as "$adm1" POST /v1/users "$(new_user "adm3-$SFX" system_admin "")"
fa_expect_status 201 "system_admin creates system_admin"
fa_api_as "$adm1" PATCH "/v1/users/adm2-$SFX" '{"status": "locked"}'
fa_expect_status 200 "system_admin locks system_admin"
fa_api_as "$adm1" PATCH "/v1/users/fm2-$SFX" '{"status": "locked"}'
fa_expect_status 200 "system_admin locks fleet manager"
fa_api_as "$adm1" PATCH "/v1/users/adm1-$SFX" '{"status": "locked"}'
expect_problem 403 forbidden "system_admin locks themselves"
fa_api_as "$adm1" PATCH "/v1/users/adm1-$SFX" '{"role": "system_operator"}'
expect_problem 403 forbidden "system_admin changes own role"
fa_expect_eq "$(user_state "adm1-$SFX")" "system_admin active" \
	"system_admin after changing themselves"

# --- An API key with a fleet_manager role follows the same rule.
fa_api POST /v1/api-keys "$(jq -cn --arg c "$c1" \
	'{name: "role test", scopes: ["users:write"], role: "fleet_manager",
	  carrier: $c}')"
fa_expect_status 201 "create fleet_manager API key"
key=$(body_field .key)
fa_api_as "$key" POST /v1/users "$(new_user "fm4-$SFX" fleet_manager "")"
expect_problem 403 forbidden "fleet_manager key creates fleet manager"
fa_api_as "$key" PATCH "/v1/users/fm1-$SFX" '{"status": "locked"}'
expect_problem 403 forbidden "fleet_manager key locks fleet manager"
fa_api_as "$key" POST /v1/users "$(new_user "drv2-$SFX" driver "")"
fa_expect_status 201 "fleet_manager key creates driver"
echo "PASS: $(basename "$0")"
