#!/usr/bin/env bash
# Fleet CA rotation, step by step as in docs/operations.md. "fleetauthd ca
# init" makes a new current CA and keeps the old one as previous, and "ca
# export" writes both for the brokers' cafile. A restarted broker trusts
# both, so devices with certificates from the old CA keep connecting while
# new enrollments and renewals get certificates from the new CA. Once the
# old CA is removed from the cafile, only its unrenewed devices are
# rejected.
# Mosquitto 2.0.11 reads cafile only at start (SIGHUP does not reload it,
# see test_broker_tls_reload.sh), so the test runs a private broker with the
# plugin and the stack's configuration, restarting it as a rolling restart
# would. At exit the stack's CA is current again.
. "$(dirname "$0")/common.sh"
ops_init "$@"

conf=$FLEETAUTH_STACK_DIR/fleetauthd.conf
broker_conf=${FLEETAUTH_MOSQUITTO_CONFS%% *}
mosquitto=${FLEETAUTH_MOSQUITTO:-/usr/sbin/mosquitto}
[[ -x $mosquitto ]] || fa_skip "$mosquitto is not installed"
broker_dir=$FA_TMP/broker
mkdir -p "$broker_dir"
if ((EUID == 0)); then
	# Mosquitto started as root drops to the mosquitto user before it
	# opens its files.
	chmod 0755 "$FA_TMP"
fi
BROKER_PID=

# Starts a broker with the stack broker's configuration, on new ports, that
# trusts the CA certificates in file cafile. Sets BROKER_PID and
# MQTT_TLS_PORT (used by fa_tls_args).
start_broker()
{
	local cafile=$1 plain_port
	plain_port=$(fa_free_port)
	MQTT_TLS_PORT=$(fa_free_port)
	cp "$cafile" "$broker_dir/cafile.pem"
	awk -v plain="$plain_port" -v tls="$MQTT_TLS_PORT" \
		-v cafile="$broker_dir/cafile.pem" '
		$1 == "listener" { n++; $2 = (n == 1 ? plain : tls) }
		$1 == "cafile" { $2 = cafile }
		$1 == "log_dest" { next }
		{ print }
		END { print "log_dest file '"$broker_dir"'/mosquitto.log" }' \
		"$broker_conf" >"$broker_dir/mosquitto.conf"
	((EUID != 0)) || chown -R mosquitto:mosquitto "$broker_dir"
	"$mosquitto" -c "$broker_dir/mosquitto.conf" </dev/null \
		>/dev/null 2>&1 &
	BROKER_PID=$!
	fa_wait_for "grep -q 'fleetauth: snapshot loaded' \
		'$broker_dir/mosquitto.log' 2>/dev/null" 20
	fa_wait_for "[[ -n \$(ss -Htln 'sport = :$MQTT_TLS_PORT') ]]" 10
}

stop_broker()
{
	[[ -n $BROKER_PID ]] || return 0
	kill "$BROKER_PID" 2>/dev/null || true
	wait "$BROKER_PID" 2>/dev/null || true
	BROKER_PID=
	rm -f "$broker_dir/mosquitto.log"
}

restore()
{
	stop_broker
	"$FLEETAUTHD" -c "$conf" ca import --cert "$FLEETAUTH_CA_FILE" \
		--key "$FLEETAUTH_CA_KEY_FILE" >/dev/null 2>&1 ||
		printf 'FAIL: re-importing the stack CA failed\n' >&2
}
fa_on_exit restore

fingerprint()
{
	openssl x509 -in "$1" -noout -fingerprint -sha256
}

carrier=$(ops_carrier ca)
dispatcher=$(ops_user disp dispatcher "$carrier")
dispatcher_token=$(ops_login "$dispatcher")

# Provisions and enrolls a truck; sets DEVICE and writes FA_TMP/DEVICE.key
# and .pem.
enroll_truck()
{
	local code
	fa_api_as "$dispatcher_token" POST /v1/devices \
		"$(jq -cn --arg c "$carrier" '{carrier: $c, kind: "truck"}')"
	fa_expect_status 201 "provision a truck"
	DEVICE=$(jq -r .device_id <<<"$FA_BODY")
	code=$(jq -r .enrollment_code <<<"$FA_BODY")
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$FA_TMP/$DEVICE.key" 2>/dev/null
	openssl req -new -key "$FA_TMP/$DEVICE.key" -subj /CN=ignored \
		-out "$FA_TMP/$DEVICE.csr" 2>/dev/null
	fa_api_as "" POST /v1/devices/enroll "$(jq -cn --arg c "$code" \
		--rawfile csr "$FA_TMP/$DEVICE.csr" \
		'{enrollment_code: $c, csr: $csr}')"
	fa_expect_status 201 "enrollment of $DEVICE"
	jq -r .certificate <<<"$FA_BODY" >"$FA_TMP/$DEVICE.pem"
}

# Renews device with a new key signed by its current key; the new
# certificate replaces FA_TMP/device.pem and .key.
renew_truck()
{
	local device=$1 signature
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$FA_TMP/$device-next.key" 2>/dev/null
	openssl req -new -key "$FA_TMP/$device-next.key" -subj /CN=ignored \
		-out "$FA_TMP/$device-next.csr" 2>/dev/null
	openssl req -in "$FA_TMP/$device-next.csr" -outform DER \
		-out "$FA_TMP/$device-next.der"
	signature=$(openssl dgst -sha256 -sign "$FA_TMP/$device.key" \
		"$FA_TMP/$device-next.der" | openssl base64 -A)
	fa_api_as "" POST "/v1/devices/$device/renew" "$(jq -cn \
		--rawfile csr "$FA_TMP/$device-next.csr" --arg s "$signature" \
		'{csr: $csr, signature: $s}')"
	fa_expect_status 201 "renewal of $device"
	jq -r .certificate <<<"$FA_BODY" >"$FA_TMP/$device.pem"
	mv "$FA_TMP/$device-next.key" "$FA_TMP/$device.key"
}

# Publishes telemetry as device over TLS with its certificate; sets
# FA_MQTT_RC.
device_publish()
{
	local device=$1
	# shellcheck disable=SC2046
	fa_mqtt_run mosquitto_pub -h "$MQTT_HOST" \
		$(fa_tls_args "$FA_TMP/$device.pem" "$FA_TMP/$device.key") \
		-u "$device" -i "$device" -q 1 \
		-t "fleet/$carrier/devices/$device/telemetry/gps" -m 1
}

# The broker learns new certificates from the change feed, a moment after
# the enrollment or renewal, so a refusal is retried for 10 seconds.
expect_connects()
{
	local deadline=$((SECONDS + 10))
	until device_publish "$1"; ((FA_MQTT_RC == 0)); do
		((SECONDS < deadline)) ||
			fa_fail "$2: $1 was refused: $FA_MQTT_ERR"
		sleep 0.2
	done
}

expect_refused()
{
	device_publish "$1"
	((FA_MQTT_RC != 0)) || fa_fail "$2: $1 still connects"
}

# --- Before: two trucks with certificates from the stack's CA.
enroll_truck
old_a=$DEVICE
enroll_truck
old_b=$DEVICE
start_broker "$FLEETAUTH_CA_FILE"
expect_connects "$old_a" "before the rotation"
old_ca_id=$(fa_sql "SELECT id FROM fleet_ca WHERE status = 'current'")

# --- Step 1: new CA; the old one stays as previous.
"$FLEETAUTHD" -c "$conf" ca init --days 30 >/dev/null 2>"$FA_TMP/init.err" ||
	fa_fail "ca init failed: $(cat "$FA_TMP/init.err")"
fa_expect_eq "$(fa_sql "SELECT status FROM fleet_ca WHERE id = $old_ca_id")" \
	previous "status of the old CA"
new_ca=$FA_TMP/new-ca.pem
FLEETAUTH_API_KEY='' "$FLEETAUTHCTL" ca show >"$new_ca" ||
	fa_fail "fleetauthctl ca show failed"
fa_expect_ne "$(fingerprint "$new_ca")" "$(fingerprint "$FLEETAUTH_CA_FILE")" \
	"current CA after ca init"

# --- Step 2: export both certificates and restart the broker with them.
"$FLEETAUTHD" -c "$conf" ca export --out "$FA_TMP/bundle.pem" ||
	fa_fail "ca export failed"
fa_expect_eq "$(grep -c 'BEGIN CERTIFICATE' "$FA_TMP/bundle.pem")" 2 \
	"certificates in the exported bundle"
stop_broker
start_broker "$FA_TMP/bundle.pem"

# Devices of the old CA keep connecting; a new enrollment gets the new CA.
expect_connects "$old_a" "old CA after the reload"
expect_connects "$old_b" "old CA after the reload"
enroll_truck
new_device=$DEVICE
openssl verify -CAfile "$new_ca" "$FA_TMP/$new_device.pem" >/dev/null ||
	fa_fail "the new enrollment is not signed by the new CA"
if openssl verify -CAfile "$FLEETAUTH_CA_FILE" "$FA_TMP/$new_device.pem" \
	>/dev/null 2>&1; then
	fa_fail "the new enrollment verifies against the old CA"
fi
expect_connects "$new_device" "new CA after the restart"

# --- Step 3: renew old_a onto the new CA.
renew_truck "$old_a"
openssl verify -CAfile "$new_ca" "$FA_TMP/$old_a.pem" >/dev/null ||
	fa_fail "the renewed certificate is not signed by the new CA"
expect_connects "$old_a" "renewed certificate"

# --- Step 4: retire the old CA from the brokers' cafile.
stop_broker
start_broker "$new_ca"
expect_refused "$old_b" "unrenewed device after the old CA was removed"
expect_connects "$old_a" "renewed device after the old CA was removed"
expect_connects "$new_device" "new device after the old CA was removed"

echo "PASS: $(basename "$0")"
