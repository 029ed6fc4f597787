#!/usr/bin/env bash
# The config file: read from --config or the XDG default, rejected when
# group or others can read it, errors name the file and line.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
. "$(dirname "$0")/common.sh"

unset FLEETAUTH_URL
config=$XDG_CONFIG_HOME/fleetauth/ctl.conf
mkdir -p "$(dirname "$config")"
printf '# fleetauthctl test\nurl = %s\napi_key = %s\ntimeout = 5\n' \
	"$(. "$FLEETAUTH_ENV" && echo "$FLEETAUTH_URL")" "$ADMIN_KEY" >"$config"

chmod 0644 "$config"
ctl_run users list
expect_error 1 "$config can be accessed by group or others (mode 0644)" \
	"default config with mode 0644"
fa_expect_contains "$CTL_ERR" "chmod 600 $config" "chmod advice"

chmod 0640 "$config"
ctl_run --config "$config" users list
expect_error 1 "mode 0640" "config with mode 0640"

chmod 0600 "$config"
ctl_run --json users list
expect_ok "default config with mode 0600"
jq -e '.items' <<<"$CTL_OUT" >/dev/null || fa_fail "users list: $CTL_OUT"

# Flags and environment win over the file.
ctl_run --url "http://127.0.0.1:$(closed_port)" users list
expect_error 1 "connection refused" "--url over the config file"

# --config names another file; a missing one is an error.
ctl_run --config "$FA_TMP/none.conf" users list
expect_error 1 "cannot open $FA_TMP/none.conf" "missing --config file"

printf 'url = http://127.0.0.1:1\ncolour = blue\n' >"$FA_TMP/bad.conf"
chmod 0600 "$FA_TMP/bad.conf"
ctl_run --config "$FA_TMP/bad.conf" users list
expect_error 1 "$FA_TMP/bad.conf line 2: unknown key \"colour\"" \
	"unknown key in the config file"
printf 'timeout = soon\n' >"$FA_TMP/bad.conf"
ctl_run --config "$FA_TMP/bad.conf" users list
expect_error 1 "line 1: invalid timeout \"soon\"" "invalid timeout"

# The credentials file is checked the same way.
mkdir -p "$XDG_STATE_HOME/fleetauth"
printf 'access_token = x\n' >"$XDG_STATE_HOME/fleetauth/credentials"
chmod 0644 "$XDG_STATE_HOME/fleetauth/credentials"
rm -f "$config"
FLEETAUTH_URL=http://127.0.0.1:1 ctl_run users list
expect_error 1 "credentials can be accessed by group or others" \
	"credentials file with mode 0644"
