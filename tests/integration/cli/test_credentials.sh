#!/usr/bin/env bash
# Credentials: login saves tokens with mode 0600, and later commands use and
# renew them. Expired or revoked credentials give one clear line that names
# where the credential came from. Logout ends the login.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
. "$(dirname "$0")/common.sh"

carrier=cli-cred-$SFX
ctl_admin carriers create "$carrier"
expect_ok "create carrier"
user=dsp-$SFX
password=$(password_file "$user")
ctl_admin users create "$user" --role dispatcher --carrier "$carrier" \
	--password-file "$password"
expect_ok "create dispatcher"

# Login writes the credentials file with mode 0600.
credentials=$XDG_STATE_HOME/fleetauth/credentials
ctl_run login "$user" --password-file - <"$password"
expect_ok "login with the password on standard input"
fa_expect_contains "$CTL_OUT" "logged in as $user" "login message"
fa_expect_not_contains "$CTL_OUT" "eyJ" "login prints no token"
fa_expect_eq "$(stat -c %a "$credentials")" 600 "mode of $credentials"
ctl_run --json loads list
expect_ok "loads list with the saved login"

# An expired saved token is renewed from the refresh token.
old_refresh=$(sed -n 's/^refresh_token = //p' "$credentials")
sed -i 's/^expires_at = .*/expires_at = 1/' "$credentials"
ctl_run --json loads list
expect_ok "loads list after the saved token expired"
new_refresh=$(sed -n 's/^refresh_token = //p' "$credentials")
fa_expect_ne "$new_refresh" "$old_refresh" "refresh token after renewal"
fa_expect_eq "$(stat -c %a "$credentials")" 600 "mode after renewal"

# A revoked login: the renewal fails and the message names what to do.
ctl_admin users revoke-sessions "$user"
expect_ok "revoke sessions"
sed -i 's/^expires_at = .*/expires_at = 1/' "$credentials"
ctl_run loads list
fa_expect_eq "$CTL_RC" 1 "loads list with a revoked login: exit status"
fa_expect_contains "$CTL_ERR" "run \"fleetauthctl login\" again" \
	"advice for a revoked login"

# The saved login is used before FLEETAUTH_ADMIN_KEY, but after an
# explicit API key.
ctl_run login "$user" --password-file "$password"
expect_ok "login again"
FLEETAUTH_ADMIN_KEY=$ADMIN_KEY ctl_run carriers create "c1-$SFX"
expect_error 1 "HTTP 403" "saved dispatcher login wins over the admin key"
FLEETAUTH_API_KEY=$ADMIN_KEY ctl_run carriers create "c2-$SFX"
expect_ok "FLEETAUTH_API_KEY wins over the saved login"

# Logout revokes the family and removes the file.
ctl_run logout
expect_ok "logout"
[[ ! -e $credentials ]] || fa_fail "logout left $credentials"
ctl_run logout
expect_error 1 "not logged in" "second logout"

# An expired access token from the environment.
now=$(date +%s)
expired=$(fa_mint_token "$(fa_claims "$user" dispatcher "$carrier" 900 \
	"{\"iat\": $((now - 1000)), \"nbf\": $((now - 1000)),
	  \"exp\": $((now - 100))}")")
FLEETAUTH_TOKEN=$expired ctl_run loads list
expect_error 1 "HTTP 401" "expired token"
fa_expect_contains "$CTL_ERR" "access token from FLEETAUTH_TOKEN" \
	"expired token names its source"
ctl_run --token "$expired" loads list
expect_error 1 "access token from --token" "expired token from --token"

# An API key that expired: backdated in the database.
ctl_admin --json api-keys create --name "expiring $SFX" --role dispatcher \
	--carrier "$carrier" --scope loads:read
expect_ok "create API key"
key=$(jq -r .key <<<"$CTL_OUT")
key_id=$(jq -r .id <<<"$CTL_OUT")
FLEETAUTH_API_KEY=$key ctl_run loads list
expect_ok "loads list with the fresh key"
fa_sql "UPDATE api_keys SET expires_at = now() - interval '1 minute'
	WHERE id = '$key_id'" >/dev/null
FLEETAUTH_API_KEY=$key ctl_run loads list
expect_error 1 "HTTP 401" "expired API key"
fa_expect_contains "$CTL_ERR" \
	"API key from FLEETAUTH_API_KEY; check that it is not expired or revoked" \
	"expired API key advice"
fa_expect_not_contains "$CTL_ERR" "$key" "error shows the key"

# Refresh with a token file needs --json, and the old token fails after use.
ctl_run --json login "$user" --password-file "$password"
expect_ok "login --json"
jq -r .refresh_token <<<"$CTL_OUT" >"$FA_TMP/refresh"
[[ ! -e $credentials ]] || fa_fail "login --json wrote $credentials"
ctl_run refresh --refresh-token-file "$FA_TMP/refresh"
expect_error 2 "needs --json" "refresh from a file without --json"
ctl_run --json refresh --refresh-token-file "$FA_TMP/refresh"
expect_ok "refresh from a file"
jq -e '.access_token and .refresh_token' <<<"$CTL_OUT" >/dev/null ||
	fa_fail "refresh printed no token pair"
ctl_run --json refresh --refresh-token-file "$FA_TMP/refresh"
expect_error 1 "HTTP 401" "reused refresh token"

# A fresh home: login creates every missing folder of
# ~/.local/state/fleetauth with mode 0700.
home=$(mktemp -d "$FA_TMP/home.XXXXXX")
HOME=$home XDG_STATE_HOME='' ctl_run login "$user" \
	--password-file "$password"
expect_ok "login into a fresh home"
for dir in .local .local/state .local/state/fleetauth; do
	[[ -d $home/$dir ]] || fa_fail "login did not create ~/$dir"
	fa_expect_eq "$(stat -c %a "$home/$dir")" 700 "mode of ~/$dir"
done
fa_expect_eq "$(stat -c %a "$home/.local/state/fleetauth/credentials")" 600 \
	"mode of the credentials file in a fresh home"
# Folders that exist keep their mode.
home=$(mktemp -d "$FA_TMP/home.XXXXXX")
mkdir -m 755 "$home/.local"
HOME=$home XDG_STATE_HOME='' ctl_run login "$user" \
	--password-file "$password"
expect_ok "login with an existing ~/.local"
fa_expect_eq "$(stat -c %a "$home/.local")" 755 "mode of an existing ~/.local"
fa_expect_eq "$(stat -c %a "$home/.local/state")" 700 "mode of ~/.local/state"
