#!/usr/bin/env bash
# The TLS listener rejects certificates that fleetauthd did not issue. One
# from a foreign CA fails the TLS handshake. One signed by the fleet CA but
# never enrolled fails in the plugin, which has no such fingerprint. A
# device may not use another device's id as username or client id.
. "$(dirname "$0")/common.sh"
dev_init "$@"

carrier=$(dev_carrier foreign)
dispatcher=$(dev_user disp dispatcher "$carrier")
token=$(dev_token "$dispatcher" dispatcher "$carrier")
dev_provision "$token" "$carrier"
device=$DEV_ID
dev_enroll
mv "$FA_TMP/$device.pem" "$FA_TMP/enrolled.pem"
mv "$FA_TMP/$device.key" "$FA_TMP/enrolled.key"
dev_provision "$token" "$carrier"
other=$DEV_ID
other_code=$DEV_CODE
topic="fleet/$carrier/devices/$device/telemetry/gps"

# The enrolled certificate works, as the baseline for the cases below.
# shellcheck disable=SC2046
fa_mqtt_pub $(fa_tls_args "$FA_TMP/enrolled.pem" "$FA_TMP/enrolled.key") \
	-V mqttv5 -q 1 -u "$device" -i "$device" -t "$topic" -m ok
fa_expect_eq "$FA_MQTT_RC" 0 "publish with the enrolled certificate ($FA_MQTT_ERR)"

# A client certificate from a CA of our own making, with the device's id.
fa_make_foreign_ca rogue-ca
fa_make_client_cert "$device" "$FA_TMP/rogue-ca.pem" "$FA_TMP/rogue-ca.key"
mv "$FA_TMP/$device.pem" "$FA_TMP/rogue.pem"
mv "$FA_TMP/$device.key" "$FA_TMP/rogue.key"
# shellcheck disable=SC2046
fa_mqtt_pub $(fa_tls_args "$FA_TMP/rogue.pem" "$FA_TMP/rogue.key") \
	-V mqttv5 -q 1 -u "$device" -i "$device" -t "$topic" -m rogue
fa_expect_ne "$FA_MQTT_RC" 0 "publish with a foreign CA's certificate"

# A certificate from the fleet CA that was never enrolled.
fa_make_client_cert "$other"
# shellcheck disable=SC2046
fa_mqtt_pub $(fa_tls_args "$FA_TMP/$other.pem" "$FA_TMP/$other.key") \
	-V mqttv5 -q 1 -u "$other" -i "$other" -t \
	"fleet/$carrier/devices/$other/telemetry/gps" -m unknown
fa_expect_ne "$FA_MQTT_RC" 0 "publish with an unenrolled certificate"

# The enrolled certificate with another (enrolled) device's id as
# username, or as client id.
dev_csr second
dev_enroll_request "$other_code" "$FA_TMP/second.csr"
fa_expect_status 201 "enrollment of the second device"
# shellcheck disable=SC2046
fa_mqtt_pub $(fa_tls_args "$FA_TMP/enrolled.pem" "$FA_TMP/enrolled.key") \
	-V mqttv5 -q 1 -u "$other" -i "$other" -t \
	"fleet/$carrier/devices/$other/telemetry/gps" -m swapped-user
fa_expect_ne "$FA_MQTT_RC" 0 "certificate of one device, username of another"
# shellcheck disable=SC2046
fa_mqtt_pub $(fa_tls_args "$FA_TMP/enrolled.pem" "$FA_TMP/enrolled.key") \
	-V mqttv5 -q 1 -u "$device" -i "$other" -t "$topic" -m swapped-id
fa_expect_ne "$FA_MQTT_RC" 0 "client id of another device"
