#!/usr/bin/env bash
# fleetauthctl --json prints the service's JSON for users, loads, devices,
# API keys and the audit trail, and jq parses it. The tables show the same
# objects, and the commands that change state take effect.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
. "$(dirname "$0")/common.sh"

carrier=cli-json-$SFX
ctl_admin carriers create "$carrier" --name "JSON carrier"
expect_ok "create carrier"
for user in "dsp-$SFX:dispatcher" "drv-$SFX:driver" "drv2-$SFX:driver"; do
	ctl_admin users create "${user%%:*}" --role "${user#*:}" \
		--carrier "$carrier" --password-file "$(password_file "$user")"
	expect_ok "create ${user%%:*}"
done

# users list --json
ctl_admin --json users list --carrier "$carrier"
expect_ok "users list --json"
count=$(jq '.items | length' <<<"$CTL_OUT")
fa_expect_eq "$count" 3 "users of $carrier"
role=$(jq -r --arg id "drv-$SFX" '.items[] | select(.id == $id) | .role' \
	<<<"$CTL_OUT")
fa_expect_eq "$role" driver "role of drv-$SFX in the JSON list"
ctl_admin users list --carrier "$carrier"
expect_ok "users list table"
fa_expect_contains "$(head -n 1 <<<"$CTL_OUT")" "ID" "table header"
fa_expect_contains "$CTL_OUT" "drv-$SFX" "table row"

# users set-role, lock, unlock, revoke-sessions, show
ctl_admin --json users set-role "drv2-$SFX" dispatcher
expect_ok "set-role"
fa_expect_eq "$(jq -r .role <<<"$CTL_OUT")" dispatcher "role after set-role"
ctl_admin users lock "drv2-$SFX"
expect_ok "lock"
ctl_admin --json users show "drv2-$SFX"
expect_ok "show"
fa_expect_eq "$(jq -r .status <<<"$CTL_OUT")" locked "status after lock"
ctl_admin users unlock "drv2-$SFX"
expect_ok "unlock"
fa_expect_eq "$(fa_sql "SELECT status FROM users WHERE id = 'drv2-$SFX'")" \
	active "stored status after unlock"
ctl_admin --json users revoke-sessions "drv-$SFX"
expect_ok "revoke-sessions"
fa_expect_eq "$(jq -r .user <<<"$CTL_OUT")" "drv-$SFX" "revoke-sessions user"

# loads: create, assign, list, unassign
ctl_run login "dsp-$SFX" --password-file "$FA_TMP/password-dsp-$SFX:dispatcher"
expect_ok "dispatcher login"
for n in 1 2 3; do
	ctl_run loads create "L$n-$SFX" --carrier "$carrier" \
		--reference "PO-$n"
	expect_ok "create load $n"
done
ctl_run loads assign "L1-$SFX" "drv-$SFX"
expect_ok "assign load"
ctl_run --json loads list
expect_ok "loads list --json"
fa_expect_eq "$(jq '.items | length' <<<"$CTL_OUT")" 3 "loads of $carrier"
drivers=$(jq -r --arg id "L1-$SFX" \
	'.items[] | select(.id == $id) | .drivers | join(",")' <<<"$CTL_OUT")
fa_expect_eq "$drivers" "drv-$SFX" "drivers of L1-$SFX"
ctl_run loads unassign "L1-$SFX"
expect_ok "unassign load"
ctl_run --json loads list
drivers=$(jq -r --arg id "L1-$SFX" \
	'.items[] | select(.id == $id) | .drivers | length' <<<"$CTL_OUT")
fa_expect_eq "$drivers" 0 "drivers of L1-$SFX after unassign"

# devices: provision, enroll, list, show, revoke
ctl_run --json devices provision --kind truck --label "CLI truck"
expect_ok "provision"
device=$(jq -r .device_id <<<"$CTL_OUT")
jq -r .enrollment_code <<<"$CTL_OUT" >"$FA_TMP/code"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$FA_TMP/dev.key" -out "$FA_TMP/dev.csr" -subj "/CN=$device" \
	2>/dev/null || fa_fail "openssl could not make a CSR"
ctl_run devices enroll --code-file "$FA_TMP/code" --csr "$FA_TMP/dev.csr" \
	--out "$FA_TMP/dev.pem" --chain-out "$FA_TMP/chain.pem"
expect_ok "enroll"
openssl x509 -in "$FA_TMP/dev.pem" -noout 2>/dev/null ||
	fa_fail "enroll wrote no certificate to $FA_TMP/dev.pem"
openssl verify -CAfile "$FA_TMP/chain.pem" "$FA_TMP/dev.pem" >/dev/null ||
	fa_fail "the certificate does not verify against the written chain"
ctl_run --json devices list --carrier "$carrier"
expect_ok "devices list --json"
status=$(jq -r --arg id "$device" \
	'.items[] | select(.device_id == $id) | .status' <<<"$CTL_OUT")
fa_expect_eq "$status" active "status of the enrolled device"
ctl_run devices revoke "$device" --reason lost
expect_error 1 "HTTP 403 forbidden" "dispatcher revokes a device"
ctl_admin devices revoke "$device" --reason lost
expect_ok "devices revoke"
ctl_run --json devices show "$device"
fa_expect_eq "$(jq -r .status <<<"$CTL_OUT")" revoked "status after revoke"

# api-keys: create prints the key once, list never shows it
ctl_admin --json api-keys create --name "cli $SFX" --role dispatcher \
	--carrier "$carrier" --scope loads:read --scope devices:read \
	--expires-days 2
expect_ok "api-keys create"
key=$(jq -r .key <<<"$CTL_OUT")
key_id=$(jq -r .id <<<"$CTL_OUT")
[[ $key =~ ^fak_[A-Za-z0-9_-]{43}$ ]] || fa_fail "api-keys create key: $key"
ctl_admin --json api-keys list
expect_ok "api-keys list --json"
scopes=$(jq -r --arg id "$key_id" \
	'.items[] | select(.id == $id) | .scopes | join(",")' <<<"$CTL_OUT")
fa_expect_eq "$scopes" "loads:read,devices:read" "scopes of the new key"
fa_expect_not_contains "$CTL_OUT" "$key" "api-keys list shows the key"
FLEETAUTH_API_KEY=$key ctl_run --json loads list
expect_ok "loads list with the new key"
ctl_admin api-keys revoke "$key_id"
expect_ok "api-keys revoke"
FLEETAUTH_API_KEY=$key ctl_run loads list
expect_error 1 "HTTP 401" "loads list with a revoked key"

# audit list --json: numeric ids in ascending order
ctl_admin --json audit list --limit 500
expect_ok "audit list --json"
jq -e '[.items[].id] | . == sort and all(type == "number")' \
	<<<"$CTL_OUT" >/dev/null || fa_fail "audit ids are not ascending numbers"
last=$(jq '.items[-1].id' <<<"$CTL_OUT")
ctl_admin --json audit list --after "$((last - 1))"
expect_ok "audit list --after"
fa_expect_eq "$(jq '.items[0].id' <<<"$CTL_OUT")" "$last" "first id after"

# audit follow prints a new event as it happens
ctl_admin --json audit list --after "$last"
last=$(jq --argjson last "$last" '.items[-1].id // $last' <<<"$CTL_OUT")
"$CTL" --api-key "$ADMIN_KEY" --json audit follow --after "$last" \
	--count 1 --wait 20 >"$FA_TMP/follow.out" 2>"$FA_TMP/follow.err" &
follow=$!
fa_on_exit "kill $follow 2>/dev/null"
ctl_admin carriers create "follow-$SFX"
expect_ok "create a carrier while following"
wait "$follow" || fa_fail "audit follow failed: $(cat "$FA_TMP/follow.err")"
action=$(jq -r .action "$FA_TMP/follow.out")
fa_expect_eq "$action" carrier.create "event printed by audit follow"
fa_expect_eq "$(jq -r .target "$FA_TMP/follow.out")" "follow-$SFX" \
	"target of the followed event"

# With --wait, follow gives up with status 1 when too few events arrive.
ctl_admin audit follow --count 5 --wait 1 --after 999999999999
expect_error 1 "0 of 5 events arrived within 1 s" "audit follow timeout"

# signing-keys list and status
ctl_admin --json signing-keys list
expect_ok "signing-keys list"
fa_expect_eq "$(jq '[.items[] | select(.status == "current")] | length' \
	<<<"$CTL_OUT")" 1 "current signing keys"
ctl_admin status
expect_ok "status"
fa_expect_contains "$CTL_OUT" "readyz       ok" "status readyz"
fa_expect_contains "$CTL_OUT" "brokers      not available" "status brokers"
