#!/usr/bin/env bash
# Login throttling. An account locks after login_max_failures (5) wrong
# passwords: 429 with Retry-After, a lock time that doubles and is capped
# at one hour. A client address locks after 20 failures.
. "$(dirname "$0")/common.sh"
auth_init "$@"

carrier=$(auth_carrier lock)
user=$(auth_user drv driver "$carrier")
start=$(auth_audit_last_id)

for i in 1 2 3 4; do
	auth_login "$user" "wrong password $i" 401
done
fa_expect_eq "$(fa_sql "SELECT failures FROM login_failures
	WHERE scope = 'user' AND key = '$user'")" 4 "failures after 4 attempts"
# The fifth failure locks the account for lockout_base (30 s).
auth_login "$user" "wrong password 5" 401
fa_expect_eq "$(auth_audit_count login.lockout "$user" denied "$start")" 1 \
	"audit of the lockout"

# Locked: even the right password gets 429 with Retry-After.
auth_login "$user" "$AUTH_PASSWORD" 429
retry=$(auth_header Retry-After)
[[ $retry =~ ^[0-9]+$ ]] || fa_fail "Retry-After is not a number: '$retry'"
((retry >= 1 && retry <= 30)) ||
	fa_fail "Retry-After $retry is outside 1..30 for the first lockout"
fa_expect_contains "$FA_BODY" throttled "problem type of a locked login"
fa_expect_eq "$(jq -r .status <<<"$FA_BODY")" 429 "problem status"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM audit_events WHERE id > $start
	AND action = 'login' AND target = '$user' AND outcome = 'denied'
	AND detail->>'reason' = 'locked'")" 1 "audit of the locked attempt"

# An attempt on a locked account is not counted as another failure.
auth_login "$user" "another wrong password" 429
fa_expect_eq "$(fa_sql "SELECT failures || ' ' || lockouts FROM login_failures
	WHERE scope = 'user' AND key = '$user'")" "0 1" \
	"counters while locked"

# After the lock expires, five more failures lock for twice as long. Each
# block starts from a fresh address, below the per-address limit.
auth_new_address
fa_sql "UPDATE login_failures SET locked_until = now() - interval '1 second'
	WHERE scope = 'user' AND key = '$user'"
for i in 1 2 3 4 5; do
	auth_login "$user" "wrong again $i" 401
done
auth_login "$user" "$AUTH_PASSWORD" 429
retry=$(auth_header Retry-After)
((retry > 30 && retry <= 60)) ||
	fa_fail "Retry-After $retry is outside 31..60 for the second lockout"
fa_expect_eq "$(fa_sql "SELECT lockouts FROM login_failures
	WHERE scope = 'user' AND key = '$user'")" 2 "lockouts after the second"

# The lock time is capped at one hour.
auth_new_address
fa_sql "UPDATE login_failures SET locked_until = now() - interval '1 second',
	lockouts = 20 WHERE scope = 'user' AND key = '$user'"
for i in 1 2 3 4 5; do
	auth_login "$user" "wrong once more $i" 401
done
auth_login "$user" "$AUTH_PASSWORD" 429
retry=$(auth_header Retry-After)
((retry > 3500 && retry <= 3600)) ||
	fa_fail "Retry-After $retry is not capped at 3600"

# Unlocked again, the right password works and clears the counters.
fa_sql "UPDATE login_failures SET locked_until = now() - interval '1 second'
	WHERE scope = 'user' AND key = '$user'"
auth_login "$user" "$AUTH_PASSWORD" 200
fa_expect_eq "$(fa_sql "SELECT count(*) FROM login_failures
	WHERE scope = 'user' AND key = '$user'")" 0 "counters after success"

auth_new_address
# Unknown usernames lock the same way, so a lockout reveals nothing about
# whether an account exists.
ghost="ghost-$AUTH_RUN"
for i in 1 2 3 4 5; do
	auth_login "$ghost" "wrong password $i" 401
done
auth_login "$ghost" "$AUTH_PASSWORD" 429

# --- Per address: 20 failures from one address lock it, for every user,
# while another address still gets through.
auth_new_address
address=$AUTH_ADDRESS
for i in $(seq 1 20); do
	auth_post /v1/auth/login "$(jq -cn --arg u "spray-$i-$AUTH_RUN" \
		'{username: $u, password: "wrong password"}')" "$address"
	fa_expect_status 401 "failure $i from $address"
done
auth_post /v1/auth/login "$(jq -cn --arg u "$user" --arg p "$AUTH_PASSWORD" \
	'{username: $u, password: $p}')" "$address"
fa_expect_status 429 "login from a locked address"
retry=$(auth_header Retry-After)
((retry > 500 && retry <= 600)) ||
	fa_fail "Retry-After $retry for a locked address is not about 600"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM audit_events WHERE id > $start
	AND action = 'login.lockout' AND target = '$address'")" 1 \
	"audit of the address lockout"
auth_new_address
auth_login "$user" "$AUTH_PASSWORD" 200
echo "PASS: $(basename "$0")"
