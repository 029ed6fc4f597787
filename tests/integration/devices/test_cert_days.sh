#!/usr/bin/env bash
# device_cert_days sets the validity of enrolled device certificates: 365
# days by default, 30 days from a second fleetauthd on the same database
# whose configuration says 30, and a value past 825 is refused by
# check-config with the option's name.
. "$(dirname "$0")/common.sh"
dev_init "$@"

carrier=$(dev_carrier certdays)
dispatcher=$(dev_user disp dispatcher "$carrier")
token=$(dev_token "$dispatcher" dispatcher "$carrier")

# Prints the days from notBefore to notAfter of a PEM certificate file,
# rounded down; the certificate starts 5 minutes before its issue.
validity_days()
{
	local start end
	start=$(date -d "$(openssl x509 -in "$1" -noout -startdate |
		cut -d= -f2)" +%s)
	end=$(date -d "$(openssl x509 -in "$1" -noout -enddate |
		cut -d= -f2)" +%s)
	echo $(((end - start) / 86400))
}

dev_provision "$token" "$carrier"
dev_enroll
fa_expect_eq "$(validity_days "$FA_TMP/$DEV_ID.pem")" 365 \
	"validity in days of a certificate under the default"

# A second fleetauthd with device_cert_days = 30 on a free port.
port=$(fa_free_port)
conf=$FA_TMP/fleetauthd-30.conf
sed -e "s/^listen_port = .*/listen_port = $port/" "$FLEETAUTHD_CONFIG" \
	>"$conf"
echo "device_cert_days = 30" >>"$conf"
"$FLEETAUTHD" -c "$conf" serve </dev/null >"$FA_TMP/fleetauthd-30.log" 2>&1 &
fa_on_exit "kill $! 2>/dev/null"
FLEETAUTH_URL=http://127.0.0.1:$port
fa_wait_for "[[ \$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
	'$FLEETAUTH_URL/healthz') == 200 ]]" 20
dev_provision "$token" "$carrier"
dev_enroll
fa_expect_eq "$(validity_days "$FA_TMP/$DEV_ID.pem")" 30 \
	"validity in days with device_cert_days = 30"

sed -i 's/^device_cert_days = 30$/device_cert_days = 900/' "$conf"
rc=0
"$FLEETAUTHD" -c "$conf" check-config >"$FA_TMP/check.out" 2>&1 || rc=$?
fa_expect_ne "$rc" 0 "exit status of check-config with device_cert_days 900"
fa_expect_contains "$(cat "$FA_TMP/check.out")" device_cert_days \
	"check-config message for device_cert_days = 900"
fa_log "ok"
