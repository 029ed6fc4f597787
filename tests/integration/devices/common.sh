# Helpers shared by the device tests: carriers and users made with SQL,
# tokens minted with the stack's signing key, CSRs made with openssl req,
# and device provisioning and enrollment through fleetauthd.
#
#   . "$(dirname "$0")/common.sh"
#   dev_init "$@"

# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

# Loads the env file, checks the tools the device tests use and sets
# DEV_RUN, a random suffix that keeps ids of repeated runs apart.
dev_init()
{
	fa_load_env "$@"
	local tool
	for tool in curl jq openssl psql mosquitto_pub mosquitto_sub; do
		command -v "$tool" >/dev/null ||
			fa_skip "$tool is not installed"
	done
	DEV_RUN=$(openssl rand -hex 4)
	# Failed enrollments from earlier runs must not throttle this one.
	fa_sql "DELETE FROM login_failures WHERE scope = 'address'
		AND key LIKE 'device.%'"
}

# Creates carrier id with a random suffix and prints the id.
dev_carrier()
{
	local id="$1-$DEV_RUN"
	fa_sql "INSERT INTO carriers (id, name) VALUES ('$id', 'Test $id')"
	printf '%s\n' "$id"
}

# Creates an active user (no password login) and prints the id:
#   dev_user NAME ROLE CARRIER   ('' as CARRIER for platform roles)
dev_user()
{
	local id="$1-$DEV_RUN" role=$2 carrier=$3 carrier_sql=NULL
	[[ -n $carrier ]] && carrier_sql="'$carrier'"
	fa_sql "INSERT INTO principals (id, kind) VALUES ('$id', 'user');
		INSERT INTO users (id, carrier_id, role, password_hash)
		VALUES ('$id', $carrier_sql, '$role', '!')"
	printf '%s\n' "$id"
}

# Prints an access token for user with role and carrier; optional extra
# claims as JSON, for example '{"amr": ["pwd", "otp"]}'.
dev_token()
{
	local extra=${4:-}
	[[ -n $extra ]] || extra='{}'
	fa_mint_token "$(fa_claims "$1" "$2" "$3" 900 "$extra")"
}

# Provisions a device as the holder of token. Sets DEV_ID and DEV_CODE.
dev_provision()
{
	local token=$1 carrier=$2 kind=${3:-truck}
	fa_api_as "$token" POST /v1/devices "$(jq -cn --arg c "$carrier" \
		--arg k "$kind" '{carrier: $c, kind: $k, label: "test unit"}')"
	fa_expect_status 201 "POST /v1/devices for carrier $carrier"
	DEV_ID=$(jq -r .device_id <<<"$FA_BODY")
	DEV_CODE=$(jq -r .enrollment_code <<<"$FA_BODY")
	[[ $DEV_ID =~ ^(trk|phn)-[a-z2-7]{12}$ ]] ||
		fa_fail "device id '$DEV_ID' is not trk-/phn- and 12 base32 characters"
	[[ $DEV_CODE =~ ^[A-Z2-7]{32}$ ]] ||
		fa_fail "enrollment code is not 32 base32 characters"
}

# Makes a key and CSR named base in FA_TMP. Extra arguments go to
# openssl req (for example -addext ...). Key type via DEV_KEY_ALG
# (default EC P-256), for example "RSA -pkeyopt rsa_keygen_bits:1024".
dev_csr()
{
	local base=$FA_TMP/$1
	shift
	local alg=${DEV_KEY_ALG:-EC -pkeyopt ec_paramgen_curve:P-256}
	# shellcheck disable=SC2086
	openssl genpkey -algorithm $alg -out "$base.key" 2>/dev/null ||
		fa_fail "openssl could not generate key $base.key"
	openssl req -new -key "$base.key" -subj "/CN=ignored" "$@" \
		-out "$base.csr" 2>/dev/null ||
		fa_fail "openssl could not create CSR $base.csr"
}

# Sends code and the CSR file; sets FA_STATUS and FA_BODY.
dev_enroll_request()
{
	local code=$1 csr_file=$2
	fa_api_as "" POST /v1/devices/enroll "$(jq -cn --arg code "$code" \
		--rawfile csr "$csr_file" '{enrollment_code: $code, csr: $csr}')"
}

# Enrolls DEV_ID with DEV_CODE and a new EC key; writes FA_TMP/<DEV_ID>.key
# and .pem.
dev_enroll()
{
	dev_csr "$DEV_ID"
	dev_enroll_request "$DEV_CODE" "$FA_TMP/$DEV_ID.csr"
	fa_expect_status 201 "enrollment of $DEV_ID"
	fa_expect_eq "$(jq -r .device_id <<<"$FA_BODY")" "$DEV_ID" \
		"device_id of the enrollment"
	jq -r .certificate <<<"$FA_BODY" >"$FA_TMP/$DEV_ID.pem"
	jq -r .ca_chain <<<"$FA_BODY" >"$FA_TMP/$DEV_ID-chain.pem"
}

# Audit rows for action and target as "outcome|reason" lines.
dev_audit()
{
	fa_sql "SELECT outcome || '|' || coalesce(detail->>'reason', '')
		FROM audit_events WHERE action = '$1' AND target = '$2'
		ORDER BY id"
}

# Milliseconds since the epoch.
dev_now_ms()
{
	date +%s%3N
}

# Prints the claims (the decoded second part) of a JWT.
dev_jwt_claims()
{
	local part
	part=$(cut -d. -f2 <<<"$1" | tr '_-' '/+')
	while ((${#part} % 4 != 0)); do
		part+="="
	done
	base64 -d <<<"$part"
}

# Runs fa_mqtt_pub with the given arguments until the broker stops refusing
# the CONNECT as not authorised (exit status 135 for MQTT 5, 5 for 3.1.1),
# at most 10 times 0.5 s apart. A certificate issued a moment ago reaches the
# broker through the change feed, so the first CONNECT can come before it.
dev_pub_retry()
{
	local attempt
	for attempt in 1 2 3 4 5 6 7 8 9 10; do
		fa_mqtt_pub "$@"
		[[ $FA_MQTT_RC == 135 || $FA_MQTT_RC == 5 ]] || return 0
		fa_log "attempt $attempt: CONNECT refused, trying again"
		sleep 0.5
	done
}
