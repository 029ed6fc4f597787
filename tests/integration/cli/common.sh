# Helpers shared by the fleetauthctl tests. Source after lib.sh and
# fa_load_env. fleetauthctl runs with its own empty XDG folders, so that
# neither the caller's config nor a saved login reaches it. Objects carry the
# random suffix $SFX, so that the tests can run again against one stack.

SFX=$(openssl rand -hex 4)
CTL=${FLEETAUTHCTL:?the env file sets FLEETAUTHCTL}
[[ -x $CTL ]] || fa_fail "fleetauthctl not found at $CTL: build it first"
export XDG_CONFIG_HOME=$FA_TMP/config XDG_STATE_HOME=$FA_TMP/state
ADMIN_KEY=$FLEETAUTH_ADMIN_KEY
unset FLEETAUTH_ADMIN_KEY FLEETAUTH_TOKEN FLEETAUTH_API_KEY

CTL_RC=
CTL_OUT=
CTL_ERR=

# Runs fleetauthctl with the given arguments and sets CTL_RC, CTL_OUT and
# CTL_ERR. A terminal on standard input is replaced with /dev/null, so that
# no command waits for a password prompt.
ctl_run()
{
	local input=/dev/stdin
	[[ ! -t 0 ]] || input=/dev/null
	CTL_RC=0
	"$CTL" "$@" <"$input" >"$FA_TMP/ctl.out" 2>"$FA_TMP/ctl.err" ||
		CTL_RC=$?
	CTL_OUT=$(cat "$FA_TMP/ctl.out")
	CTL_ERR=$(cat "$FA_TMP/ctl.err")
}

# Runs fleetauthctl as the stack's system administrator API key.
ctl_admin()
{
	FLEETAUTH_API_KEY=$ADMIN_KEY ctl_run "$@"
}

# Fails unless the last run succeeded.
expect_ok()
{
	local what=$1
	[[ $CTL_RC == 0 ]] ||
		fa_fail "$what: fleetauthctl exited $CTL_RC: $CTL_ERR"
}

# Fails unless the last run exited with status and printed exactly one line
# on stderr that starts with "fleetauthctl: " and contains needle.
expect_error()
{
	local status=$1 needle=$2 what=$3 lines
	fa_expect_eq "$CTL_RC" "$status" "$what: exit status"
	lines=$(printf '%s\n' "$CTL_ERR" | grep -c '' || true)
	fa_expect_eq "$lines" 1 "$what: lines on stderr ($CTL_ERR)"
	fa_expect_contains "$CTL_ERR" "fleetauthctl: " "$what: prefix"
	fa_expect_contains "$CTL_ERR" "$needle" "$what: message"
}

# Writes a password file readable only by this user and prints its path.
password_file()
{
	local file=$FA_TMP/password-$1
	(umask 077 && openssl rand -base64 24 >"$file")
	printf '%s\n' "$file"
}

# Prints a TCP port on 127.0.0.1 that nothing listens on, after checking.
closed_port()
{
	local port
	port=$(fa_free_port)
	[[ -z $(ss -Htln "sport = :$port") ]] ||
		fa_fail "port $port unexpectedly has a listener"
	printf '%s\n' "$port"
}
