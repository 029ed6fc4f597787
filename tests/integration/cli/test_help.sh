#!/usr/bin/env bash
# Every group and command of fleetauthctl responds to --help with status 0,
# a usage line and every option it accepts; the main help lists every group.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
. "$(dirname "$0")/common.sh"

# "group command" (or just "group") followed by the options its help must
# name.
commands=(
	"login|--password-file --totp --totp-file"
	"logout|"
	"refresh|--refresh-token-file"
	"totp enroll|"
	"totp confirm|"
	"users create|--role --carrier --password-file"
	"users list|--carrier --role --status --limit --after"
	"users show|"
	"users set-role|"
	"users lock|"
	"users unlock|"
	"users delete|"
	"users revoke-sessions|"
	"carriers create|--name --time-zone"
	"carriers list|--limit --after"
	"devices provision|--carrier --kind --label"
	"devices enroll|--code --code-file --csr --out --chain-out"
	"devices list|--carrier --status --limit --after"
	"devices show|"
	"devices revoke|--reason"
	"loads create|--carrier --reference"
	"loads assign|--carrier"
	"loads unassign|--carrier"
	"loads list|--carrier --limit --after"
	"api-keys create|--name --role --carrier --scope --expires-days"
	"api-keys list|--limit --after"
	"api-keys revoke|"
	"signing-keys rotate|--alg"
	"signing-keys list|"
	"audit list|--after --limit"
	"audit follow|--after --count --interval --wait"
	"status|"
)

for entry in "${commands[@]}"; do
	words=${entry%%|*}
	options=${entry#*|}
	# shellcheck disable=SC2086
	ctl_run $words --help
	expect_ok "$words --help"
	fa_expect_contains "$CTL_OUT" "Usage: fleetauthctl $words" \
		"$words --help usage line"
	fa_expect_contains "$CTL_OUT" "--url" "$words --help global options"
	for option in $options; do
		fa_expect_contains "$CTL_OUT" "$option " \
			"$words --help mentions $option"
	done
done

# Help of a group lists its commands.
ctl_run users --help
expect_ok "users --help"
for command in create list show set-role lock unlock delete revoke-sessions
do
	fa_expect_contains "$CTL_OUT" "  $command " "users --help lists $command"
done

# The main help lists every group and names where credentials come from.
ctl_run --help
expect_ok "--help"
for group in login logout refresh totp users carriers devices loads \
	api-keys signing-keys audit status; do
	fa_expect_contains "$CTL_OUT" "  $group " "--help lists $group"
done
fa_expect_contains "$CTL_OUT" "FLEETAUTH_ADMIN_KEY" "--help on credentials"
fa_expect_contains "$CTL_OUT" "--timeout SECONDS" "--help names the unit"

ctl_run --version
expect_ok "--version"
fa_expect_contains "$CTL_OUT" "fleetauthctl " "--version output"
