#!/usr/bin/env bash
# Wrong command lines and failed requests end fleetauthctl with a non-zero
# status and one line on stderr that names the problem.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
. "$(dirname "$0")/common.sh"

# Command-line errors exit 2 before any request.
ctl_run
expect_error 2 "missing group" "no arguments"
ctl_run frobnicate
expect_error 2 'unknown group "frobnicate"' "unknown group"
ctl_run users
expect_error 2 "missing command (one of: create, list" "group only"
ctl_run users rename x
expect_error 2 'unknown command "rename"' "unknown command"
ctl_run users show
expect_error 2 "missing argument: expected USER_ID" "missing argument"
ctl_run users show a b
expect_error 2 'unexpected argument "b"' "extra argument"
ctl_run users list --colour
expect_error 2 "unknown option --colour" "unknown option"
ctl_run users list --carrier
expect_error 2 "option --carrier needs a value" "option without value"
ctl_run users list -x
expect_error 2 "unknown option -x" "short option"
ctl_run --timeout 0 status
expect_error 2 "invalid --timeout \"0\"" "timeout out of range"
ctl_admin users show 'a/b'
expect_error 2 'invalid user id "a/b"' "user id with a slash"
ctl_admin users create "u-$SFX" --role captain --carrier x
expect_error 2 'invalid role "captain"' "unknown role"
ctl_admin devices provision --kind boat
expect_error 2 "invalid --kind" "unknown device kind"
ctl_admin devices revoke x
expect_error 2 "missing --reason" "revoke without reason"
ctl_admin totp confirm 12ab56
expect_error 2 "invalid TOTP code" "TOTP code with letters"
ctl_admin audit list --limit many
expect_error 2 'invalid --limit "many"' "limit not a number"

# Requests without credentials fail before they are sent.
ctl_run users list
expect_error 1 "no credentials" "no credentials"
fa_expect_contains "$CTL_ERR" "fleetauthctl login" "advice without credentials"

# Problem responses are shown in plain words, one line.
carrier=cli-$SFX
ctl_admin carriers create "$carrier" --name "CLI test carrier"
expect_ok "create carrier"
ctl_admin carriers create "$carrier"
expect_error 1 "carriers create: HTTP 409 conflict" "duplicate carrier"
ctl_admin users show "nobody-$SFX"
expect_error 1 "users show: user \"nobody-$SFX\" not found (HTTP 404)" \
	"unknown user"
ctl_admin devices show "trk-$SFX"
expect_error 1 "device \"trk-$SFX\" not found (HTTP 404)" "unknown device"
ctl_admin api-keys revoke "key-$SFX"
expect_error 1 "API key \"key-$SFX\" not found (HTTP 404)" \
	"unknown API key"
ctl_admin carriers create "tz-$SFX" --time-zone Mars/Olympus
expect_error 1 "HTTP 400" "invalid time zone"
fa_expect_contains "$CTL_ERR" "time_zone" "invalid time zone names the field"

password=$(password_file "drv-$SFX")
ctl_admin users create "drv-$SFX" --role driver --carrier "$carrier" \
	--password-file "$password"
expect_ok "create driver"
ctl_admin users create "drv-$SFX" --role driver --carrier "$carrier" \
	--password-file "$password"
expect_error 1 "HTTP 409 conflict" "duplicate user"
ctl_run users create "x-$SFX" --role driver --carrier "$carrier" \
	--password-file "$FA_TMP/missing"
expect_error 1 "cannot open $FA_TMP/missing" "missing password file"
ctl_run users create "x-$SFX" --role driver --carrier "$carrier"
expect_error 1 "standard input is not a terminal" "no password source"

# A driver may not list users: 403 in plain words.
ctl_run login "drv-$SFX" --password-file "$password"
expect_ok "driver login"
ctl_run users list
expect_error 1 "users list: HTTP 403 forbidden" "driver lists users"
ctl_run --json login "drv-$SFX" --password-file "$FA_TMP/missing"
expect_error 1 "cannot open" "login with a missing password file"

# Only http:// and https:// URLs are used.
ctl_run --url ftp://127.0.0.1/ --api-key fak_x users list
expect_error 1 "expected http:// or https://" "unsupported scheme"
