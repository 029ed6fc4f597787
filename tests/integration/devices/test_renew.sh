#!/usr/bin/env bash
# Renewal: a device proves possession of its current key by signing the
# SHA-256 of the new CSR's DER. The new certificate works, the old one is
# superseded (refused by the broker, listed in the CRL), and proofs by the
# wrong key or over another CSR are refused.
. "$(dirname "$0")/common.sh"
dev_init "$@"

carrier=$(dev_carrier renew)
dispatcher=$(dev_user disp dispatcher "$carrier")
manager=$(dev_user mgr fleet_manager "$carrier")
token=$(dev_token "$dispatcher" dispatcher "$carrier")
manager_token=$(dev_token "$manager" fleet_manager "$carrier")
dev_provision "$token" "$carrier"
device=$DEV_ID
dev_enroll
old_serial=$(fa_sql "SELECT serial FROM device_certificates
	WHERE device_id = '$device'")
topic="fleet/$carrier/devices/$device/telemetry/gps"

# Signs the DER of CSR file csr with key and sends the renewal.
renew()
{
	local csr=$1 key=$2
	openssl req -in "$csr" -outform DER -out "$FA_TMP/renew.der"
	signature=$(openssl dgst -sha256 -sign "$key" "$FA_TMP/renew.der" |
		openssl base64 -A)
	fa_api_as "" POST "/v1/devices/$device/renew" "$(jq -cn \
		--rawfile csr "$csr" --arg s "$signature" \
		'{csr: $csr, signature: $s}')"
}

dev_csr next
dev_csr unrelated

# The new key cannot vouch for itself.
renew "$FA_TMP/next.csr" "$FA_TMP/next.key"
fa_expect_status 403 "renewal signed by the new key"
fa_expect_contains "$(dev_audit device.renew "$device")" \
	"denied|bad_signature" "audit of the bad proof"

# A proof over another CSR does not carry over.
openssl req -in "$FA_TMP/unrelated.csr" -outform DER -out "$FA_TMP/u.der"
signature=$(openssl dgst -sha256 -sign "$FA_TMP/$device.key" "$FA_TMP/u.der" |
	openssl base64 -A)
fa_api_as "" POST "/v1/devices/$device/renew" "$(jq -cn \
	--rawfile csr "$FA_TMP/next.csr" --arg s "$signature" \
	'{csr: $csr, signature: $s}')"
fa_expect_status 403 "renewal with a proof over another CSR"

fa_api_as "" POST "/v1/devices/$device/renew" "$(jq -cn \
	--rawfile csr "$FA_TMP/next.csr" '{csr: $csr, signature: "%%%"}')"
fa_expect_status 400 "renewal with a signature that is not base64"

# The right proof renews.
renew "$FA_TMP/next.csr" "$FA_TMP/$device.key"
fa_expect_status 201 "renewal"
jq -r .certificate <<<"$FA_BODY" >"$FA_TMP/next.pem"
new_serial=$(jq -r .serial <<<"$FA_BODY")
fa_expect_ne "$new_serial" "$old_serial" "serial of the renewed certificate"
fa_expect_eq "$(fa_sql "SELECT string_agg(serial || ':' || status, ','
	ORDER BY issued_at) FROM device_certificates WHERE device_id = '$device'")" \
	"$old_serial:superseded,$new_serial:active" "certificates after renewal"
fa_expect_eq "$(dev_audit device.renew "$device" | tail -1)" "success|" \
	"audit of the renewal"

# The new certificate connects; the old one no longer does.
# shellcheck disable=SC2046
fa_mqtt_pub $(fa_tls_args "$FA_TMP/next.pem" "$FA_TMP/next.key") -V mqttv5 \
	-q 1 -u "$device" -i "$device" -t "$topic" -m renewed
fa_expect_eq "$FA_MQTT_RC" 0 "publish with the renewed certificate ($FA_MQTT_ERR)"
# shellcheck disable=SC2046
fa_mqtt_pub $(fa_tls_args "$FA_TMP/$device.pem" "$FA_TMP/$device.key") \
	-V mqttv5 -q 1 -u "$device" -i "$device" -t "$topic" -m superseded
fa_expect_ne "$FA_MQTT_RC" 0 "publish with the superseded certificate"

# The superseded certificate's key can no longer renew.
dev_csr third
renew "$FA_TMP/third.csr" "$FA_TMP/$device.key"
fa_expect_status 403 "renewal with the superseded key"

# The CRL lists the superseded serial with reason superseded.
curl -s --max-time 5 -o "$FA_TMP/crl.pem" "$FLEETAUTH_URL/v1/ca/crl"
crl_text=$(openssl crl -in "$FA_TMP/crl.pem" -noout -text)
[[ ${crl_text,,} =~ serial\ number:\ 0*${old_serial} ]] ||
	fa_fail "CRL does not list the superseded serial $old_serial"
fa_expect_contains "$crl_text" "Superseded" "CRL reason"

# A revoked device cannot renew.
fa_api_as "$manager_token" POST "/v1/devices/$device/revoke" \
	'{"reason": "lost"}'
fa_expect_status 200 "revocation"
renew "$FA_TMP/third.csr" "$FA_TMP/next.key"
fa_expect_status 403 "renewal of a revoked device"
fa_expect_contains "$(dev_audit device.renew "$device" | tail -1)" \
	"denied|device_not_active" "audit of the refused renewal"
