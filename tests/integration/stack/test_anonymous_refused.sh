#!/usr/bin/env bash
# A client without credentials, or with a password that is not a valid
# access token, is refused at CONNECT on every listener and with MQTT 3.1.1
# and 5. mosquitto_pub exits 5 for the 3.1.1 return code "not authorised" and
# 135 (0x87) for the MQTT 5 reason code "Not authorized".
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"

expect_refused()
{
	local version=$1 what=$2
	shift 2
	case $version in
	mqttv311)
		fa_expect_eq "$FA_MQTT_RC" 5 "$what: mosquitto_pub exit code"
		fa_expect_contains "$FA_MQTT_ERR" \
			"Connection Refused: not authorised" "$what: stderr"
		;;
	mqttv5)
		fa_expect_eq "$FA_MQTT_RC" 135 "$what: mosquitto_pub exit code"
		fa_expect_contains "$FA_MQTT_ERR" "Not authorized" \
			"$what: stderr"
		;;
	esac
}

IFS=, read -r -a ports <<<"$MQTT_PORTS"
for port in "${ports[@]}"; do
	for version in mqttv311 mqttv5; do
		what="no credentials, port $port, $version"
		fa_mqtt_run mosquitto_pub -h "$MQTT_HOST" -p "$port" \
			-V "$version" -i anonymous-probe -t fleet/x -m hello
		expect_refused "$version" "$what"

		what="username without password, port $port, $version"
		fa_mqtt_run mosquitto_pub -h "$MQTT_HOST" -p "$port" \
			-V "$version" -u drv-nobody -i drv-nobody -t fleet/x \
			-m hello
		expect_refused "$version" "$what"

		what="garbage password, port $port, $version"
		fa_mqtt_run mosquitto_pub -h "$MQTT_HOST" -p "$port" \
			-V "$version" -u drv-nobody -i drv-nobody \
			-P not-a-token -t fleet/x -m hello
		expect_refused "$version" "$what"
	done
done

# The subscriber side is refused the same way.
fa_mqtt_sub -V mqttv5 -i anonymous-probe -t 'fleet/#' -C 1
expect_refused mqttv5 "mosquitto_sub without credentials"

# The TLS listener requires a client certificate: the handshake fails before
# MQTT, so no CONNACK arrives and mosquitto_pub reports a lost connection.
IFS=, read -r -a tls_ports <<<"$MQTT_TLS_PORTS"
for port in "${tls_ports[@]}"; do
	fa_mqtt_run mosquitto_pub -h "$MQTT_HOST" -p "$port" \
		--cafile "$FLEETAUTH_BROKER_CA_FILE" -V mqttv5 \
		-i anonymous-probe -t fleet/x -m hello
	fa_expect_ne "$FA_MQTT_RC" 0 "TLS port $port without certificate"
	fa_expect_not_contains "$FA_MQTT_ERR" "Connection Refused" \
		"TLS port $port without certificate: refused before MQTT"
done

# A certificate from the fleet CA that no device owns, without username,
# completes the handshake and is then refused by the plugin.
fa_make_client_cert unregistered-device
fa_mqtt_run mosquitto_pub -h "$MQTT_HOST" \
	$(fa_tls_args "$FA_TMP/unregistered-device.pem" \
		"$FA_TMP/unregistered-device.key") \
	-V mqttv311 -i unregistered-device -t fleet/x -m hello
expect_refused mqttv311 "unregistered fleet certificate without username"
