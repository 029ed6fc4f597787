#!/usr/bin/env bash
# The life of a truck. A dispatcher provisions it and it enrolls with a
# CSR made by openssl req. It connects over TLS with the issued certificate
# and publishes to its own telemetry topic (delivered) and to another
# device's (not delivered). A fleet manager revokes it: the broker drops
# its session and rejects it on reconnect, and the CRL lists its serial.
. "$(dirname "$0")/common.sh"
dev_init "$@"

carrier=$(dev_carrier acme)
dispatcher=$(dev_user disp dispatcher "$carrier")
manager=$(dev_user mgr fleet_manager "$carrier")
dispatch_token=$(dev_token "$dispatcher" dispatcher "$carrier")
manager_token=$(dev_token "$manager" fleet_manager "$carrier")

# Provisioning stores only the code's hash, with an expiry.
dev_provision "$dispatch_token" "$carrier" truck
device=$DEV_ID
fa_expect_eq "$(fa_sql "SELECT status FROM devices WHERE id = '$device'")" \
	pending "status after provisioning"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM enrollment_codes
	WHERE device_id = '$device'
	AND code_hash = sha256(convert_to('$DEV_CODE', 'UTF8'))
	AND expires_at > now() AND used_at IS NULL")" 1 \
	"stored enrollment code hash"

# Enrollment with a CSR whose subject names someone else: the CA writes
# its own subject.
dev_enroll
cert=$FA_TMP/$device.pem
key=$FA_TMP/$device.key
text=$(openssl x509 -in "$cert" -noout -text)
fa_expect_contains "$text" "CN = $device" "certificate subject CN"
fa_expect_contains "$text" "O = $carrier" "certificate subject O"
fa_expect_not_contains "$text" "ignored" "certificate subject"
fa_expect_contains "$text" "URI:urn:fleetauth:device:$device" "SAN URI"
fa_expect_contains "$text" "TLS Web Client Authentication" \
	"extendedKeyUsage clientAuth"
fa_expect_contains "$text" "CA:FALSE" "basicConstraints"
openssl verify -CAfile "$FA_TMP/$device-chain.pem" "$cert" >/dev/null ||
	fa_fail "the certificate does not verify against ca_chain"
serial=$(openssl x509 -in "$cert" -noout -serial | cut -d= -f2 |
	tr 'A-F' 'a-f' | sed 's/^0*//')
fingerprint=$(openssl x509 -in "$cert" -outform DER |
	openssl dgst -sha256 -r | cut -d' ' -f1)
fa_expect_eq "$(fa_sql "SELECT serial || ' ' || fingerprint_sha256 || ' ' ||
	status FROM device_certificates WHERE device_id = '$device'")" \
	"$serial $fingerprint active" "stored certificate"
((${#serial} >= 24)) || fa_fail "serial $serial has fewer than 96 bits"
fa_expect_eq "$(fa_sql "SELECT status || ' ' || (enrolled_at IS NOT NULL)
	FROM devices WHERE id = '$device'")" "active true" "device after enrollment"
fa_expect_eq "$(dev_audit device.enroll "$device")" "success|" \
	"audit of the enrollment"

# The dispatcher watches the carrier's telemetry.
telemetry=$FA_TMP/telemetry.txt
fa_wait_subscribe 15 -V mqttv5 -u "$dispatcher" -P "$dispatch_token" \
	-i "$dispatcher" -t "fleet/$carrier/devices/+/telemetry/#"
fa_mqtt_sub_bg "$telemetry" -V mqttv5 -u "$dispatcher" -P "$dispatch_token" \
	-i "$dispatcher" -t "fleet/$carrier/devices/+/telemetry/#" -v
watcher=$FA_SUB_PID
sleep 1
fa_pid_running "$watcher" ||
	fa_fail "dispatcher subscriber exited: $(cat "$telemetry.err")"

# Publishing to its own topic is delivered.
# shellcheck disable=SC2046
dev_pub_retry $(fa_tls_args "$cert" "$key") -V mqttv5 -q 1 -u "$device" \
	-i "$device" -t "fleet/$carrier/devices/$device/telemetry/gps" \
	-m "own-$DEV_RUN"
fa_expect_eq "$FA_MQTT_RC" 0 "publish to own topic (stderr: $FA_MQTT_ERR)"
fa_wait_for "grep -q 'own-$DEV_RUN' '$telemetry'" 5

# Publishing to another device's topic is denied: a reason code or a
# disconnect, and the message never arrives.
# shellcheck disable=SC2046
fa_mqtt_pub $(fa_tls_args "$cert" "$key") -V mqttv5 -q 1 -u "$device" \
	-i "$device" -t "fleet/$carrier/devices/trk-other/telemetry/gps" \
	-m "spoof-$DEV_RUN"
fa_log "publish to another device's topic: exit status $FA_MQTT_RC," \
	"stderr: ${FA_MQTT_ERR:-none}"
if [[ $FA_MQTT_RC == 0 && $FA_MQTT_ERR != *"ot authorized"* ]]; then
	fa_fail "publish to another device's topic was accepted"
fi
sleep 1
grep -q "spoof-$DEV_RUN" "$telemetry" &&
	fa_fail "a message to another device's topic was delivered"

# The device listens for commands; revocation must end that session.
commands=$FA_TMP/commands.txt
# shellcheck disable=SC2046
mosquitto_sub -h "$MQTT_HOST" $(fa_tls_args "$cert" "$key") -V mqttv5 \
	-u "$device" -i "$device" -t "fleet/$carrier/devices/$device/commands/#" \
	>"$commands" 2>"$commands.err" </dev/null &
session=$!
fa_on_exit "kill $session 2>/dev/null"
fa_wait_for "grep -q 'as $device ' '$FLEETAUTH_STACK_DIR/logs/broker-1.log'" 5
sleep 0.5
fa_pid_running "$session" ||
	fa_fail "device subscriber did not stay connected: $(cat "$commands.err")"

# A dispatcher may not revoke; a fleet manager may.
fa_api_as "$dispatch_token" POST "/v1/devices/$device/revoke" \
	'{"reason": "stolen"}'
fa_expect_status 403 "revocation by a dispatcher"
start=$(dev_now_ms)
fa_api_as "$manager_token" POST "/v1/devices/$device/revoke" \
	'{"reason": "stolen"}'
fa_expect_status 200 "revocation by a fleet manager"
fa_expect_eq "$(jq -r .certificates_revoked <<<"$FA_BODY")" 1 \
	"certificates revoked"
deadline=$((SECONDS + 5))
while fa_pid_running "$session" && ((SECONDS < deadline)); do
	sleep 0.05
done
fa_pid_running "$session" &&
	fa_fail "the revoked device was still connected after 5 s"
elapsed=$(($(dev_now_ms) - start))
fa_log "revoked device disconnected ${elapsed} ms after the revoke request"
((elapsed < 1000)) ||
	fa_fail "disconnect took ${elapsed} ms; the limit is 1000 ms"

# Reconnecting is refused.
# shellcheck disable=SC2046
fa_mqtt_pub $(fa_tls_args "$cert" "$key") -V mqttv5 -q 1 -u "$device" \
	-i "$device" -t "fleet/$carrier/devices/$device/telemetry/gps" \
	-m "after-revoke-$DEV_RUN"
fa_expect_ne "$FA_MQTT_RC" 0 "reconnect of a revoked device"

# A second revocation conflicts.
fa_api_as "$manager_token" POST "/v1/devices/$device/revoke" \
	'{"reason": "stolen"}'
fa_expect_status 409 "second revocation"

# GET shows the revocation.
fa_api_as "$dispatch_token" GET "/v1/devices/$device"
fa_expect_status 200 "GET /v1/devices/$device"
fa_expect_eq "$(jq -r '.status + " " + .revoke_reason' <<<"$FA_BODY")" \
	"revoked stolen" "status and reason"
fa_expect_eq "$(jq -r '.serial' <<<"$FA_BODY")" "$serial" "serial in GET"
fa_expect_eq "$(jq -r '.certificates[0].status' <<<"$FA_BODY")" revoked \
	"certificate status in GET"
fa_expect_ne "$(jq -r '.revoked_at' <<<"$FA_BODY")" null "revoked_at"

# The audit trail has the decision.
fa_expect_eq "$(fa_sql "SELECT actor || ' ' || outcome || ' ' ||
	(detail->>'reason') FROM audit_events WHERE action = 'device.revoke'
	AND target = '$device'")" "$manager success stolen" "audit of revocation"

# The CRL, signed by the fleet CA, lists the serial as key compromise.
curl -s --max-time 5 -o "$FA_TMP/crl.pem" "$FLEETAUTH_URL/v1/ca/crl"
openssl crl -in "$FA_TMP/crl.pem" -noout -CAfile "$FLEETAUTH_CA_FILE" \
	2>"$FA_TMP/crl.err" || fa_fail "CRL is not valid PEM: $(cat "$FA_TMP/crl.err")"
grep -q "verify OK" "$FA_TMP/crl.err" ||
	fa_fail "CRL signature does not verify: $(cat "$FA_TMP/crl.err")"
crl_text=$(openssl crl -in "$FA_TMP/crl.pem" -noout -text)
[[ ${crl_text,,} =~ serial\ number:\ 0*${serial} ]] ||
	fa_fail "CRL does not list serial $serial: $crl_text"
fa_expect_contains "$crl_text" "Key Compromise" "CRL reason"
fa_expect_contains "$crl_text" "X509v3 CRL Number" "CRL number"
curl -s --max-time 5 -o "$FA_TMP/crl.der" "$FLEETAUTH_URL/v1/ca/crl?format=der"
openssl crl -inform DER -in "$FA_TMP/crl.der" -noout -text \
	>"$FA_TMP/crl-der.txt" || fa_fail "DER CRL does not parse"
fa_expect_contains "$(tr 'A-F' 'a-f' <"$FA_TMP/crl-der.txt")" "$serial" \
	"DER CRL entry"
fa_api_as "" GET "/v1/ca/crl?format=xml"
fa_expect_status 400 "CRL in an unknown format"

# An RSA 2048 device key works too, with keyEncipherment added.
dev_provision "$dispatch_token" "$carrier" truck
rsa_device=$DEV_ID
DEV_KEY_ALG="RSA -pkeyopt rsa_keygen_bits:2048" dev_csr "$rsa_device"
dev_enroll_request "$DEV_CODE" "$FA_TMP/$rsa_device.csr"
fa_expect_status 201 "enrollment with an RSA 2048 key"
jq -r .certificate <<<"$FA_BODY" >"$FA_TMP/$rsa_device.pem"
fa_expect_contains "$(openssl x509 -in "$FA_TMP/$rsa_device.pem" -noout \
	-ext keyUsage)" "Digital Signature, Key Encipherment" "RSA keyUsage"
# shellcheck disable=SC2046
dev_pub_retry $(fa_tls_args "$FA_TMP/$rsa_device.pem" \
	"$FA_TMP/$rsa_device.key") \
	-V mqttv5 -q 1 -u "$rsa_device" -i "$rsa_device" \
	-t "fleet/$carrier/devices/$rsa_device/telemetry/gps" -m "rsa-$DEV_RUN"
fa_expect_eq "$FA_MQTT_RC" 0 "publish with an RSA certificate ($FA_MQTT_ERR)"
fa_wait_for "grep -q 'rsa-$DEV_RUN' '$telemetry'" 5
