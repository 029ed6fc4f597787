# Helpers for the bash integration tests. A test script sources this file,
# calls fa_load_env "$@", and then talks to the stack that tools/stack up
# started: HTTP through curl, SQL through psql, MQTT through mosquitto_pub and
# mosquitto_sub. Every wait is bounded. See docs/local-stack.md.
#
#   . "$(dirname "$0")/../lib.sh"
#   fa_load_env "$@"
#
# Functions that capture a result set globals instead of printing, so that a
# caller keeps both the status and the output:
#   fa_api, fa_api_as      FA_STATUS (HTTP status), FA_BODY (response body)
#   fa_mqtt_pub, fa_mqtt_sub
#                          FA_MQTT_RC (exit code), FA_MQTT_OUT (stdout),
#                          FA_MQTT_ERR (stderr)

set -euo pipefail

FA_TMP=
FA_CLEANUP=()
FA_STATUS=
FA_BODY=
FA_MQTT_RC=
FA_MQTT_OUT=
FA_MQTT_ERR=

# Seconds that one MQTT client or HTTP request may take before it is killed.
FA_CLIENT_TIMEOUT=${FA_CLIENT_TIMEOUT:-10}

# Prints a failure with the calling test's name and exits 1.
fa_fail()
{
	printf 'FAIL: %s: %s\n' "$(basename "$0")" "$*" >&2
	exit 1
}

fa_log()
{
	printf '%s: %s\n' "$(basename "$0")" "$*" >&2
}

# Exits 77, which CTest reports as skipped (SKIP_RETURN_CODE).
fa_skip()
{
	printf 'SKIP: %s: %s\n' "$(basename "$0")" "$*" >&2
	exit 77
}

# Registers a command to run when the test exits, newest first.
fa_on_exit()
{
	FA_CLEANUP+=("$*")
}

fa_run_cleanup()
{
	local i
	for ((i = ${#FA_CLEANUP[@]} - 1; i >= 0; i--)); do
		eval "${FA_CLEANUP[i]}" || true
	done
	if [[ -n $FA_TMP && -d $FA_TMP ]]; then
		rm -rf -- "$FA_TMP"
	fi
}

# Sources the stack's env file, given as $1 or in FLEETAUTH_ENV, and makes
# a private temporary directory FA_TMP that is removed on exit.
fa_load_env()
{
	local file=${1:-${FLEETAUTH_ENV:-}}
	[[ -n $file ]] ||
		fa_fail "missing env file: pass DIR/env as \$1 or set" \
			"FLEETAUTH_ENV"
	[[ -r $file ]] || fa_fail "env file $file not found or not readable"
	# shellcheck disable=SC1090
	. "$file"
	FLEETAUTH_ENV=$file
	FA_TMP=$(mktemp -d "${TMPDIR:-/tmp}/fa-test.XXXXXX")
	trap fa_run_cleanup EXIT
}

# Fails unless actual equals expected; what names the value checked.
fa_expect_eq()
{
	local actual=$1 expected=$2 what=$3
	[[ $actual == "$expected" ]] ||
		fa_fail "$what: expected '$expected', got '$actual'"
}

fa_expect_ne()
{
	local actual=$1 unexpected=$2 what=$3
	[[ $actual != "$unexpected" ]] ||
		fa_fail "$what: expected anything but '$unexpected'"
}

# Fails unless text contains the fixed string needle.
fa_expect_contains()
{
	local text=$1 needle=$2 what=$3
	[[ $text == *"$needle"* ]] ||
		fa_fail "$what: expected text containing '$needle', got '$text'"
}

fa_expect_not_contains()
{
	local text=$1 needle=$2 what=$3
	[[ $text != *"$needle"* ]] ||
		fa_fail "$what: text must not contain '$needle', got '$text'"
}

# Runs a command (a string for eval) every 0.1 s until it succeeds; fails
# after timeout seconds. Returns 0 as soon as the command succeeds.
fa_wait_for()
{
	local command=$1 timeout=$2
	local deadline=$((SECONDS + timeout))
	until eval "$command"; do
		((SECONDS < deadline)) ||
			fa_fail "timed out after ${timeout}s waiting for:" \
				"$command"
		sleep 0.1
	done
}

# Prints a TCP port that no socket uses, below the kernel's ephemeral range
# (as tools/stack does), so that an outgoing connection cannot take it.
fa_free_port()
{
	local port try high
	high=$(awk '{ print $1 - 1 }' /proc/sys/net/ipv4/ip_local_port_range \
		2>/dev/null || echo 32767)
	((high > 11000)) || high=32767
	for try in $(seq 1 100); do
		port=$((10000 + (RANDOM * 32768 + RANDOM) % (high - 10000 + 1)))
		if [[ -z $(ss -Htan "sport = :$port") ]]; then
			printf '%s\n' "$port"
			return 0
		fi
	done
	fa_fail "no free TCP port found after $try tries"
}

# ---------------------------------------------------------------------------
# HTTP.

# Sends a request with the given bearer credential (an access token or an API
# key; empty for none). Sets FA_STATUS and FA_BODY. A JSON body is sent with
# Content-Type: application/json.
fa_api_as()
{
	local credential=$1 method=$2 path=$3 body=${4-}
	local out=$FA_TMP/http-body args
	args=(-s -o "$out" -w '%{http_code}' --max-time "$FA_CLIENT_TIMEOUT"
		-X "$method")
	if [[ -n $credential ]]; then
		args+=(-H "Authorization: Bearer $credential")
	fi
	if (($# >= 4)); then
		args+=(-H 'Content-Type: application/json'
			--data-binary "$body")
	fi
	FA_STATUS=$(curl "${args[@]}" "$FLEETAUTH_URL$path") || FA_STATUS=000
	FA_BODY=$(cat "$out" 2>/dev/null || true)
	rm -f "$out"
}

# Sends a request as the stack's system administrator API key.
fa_api()
{
	fa_api_as "$FLEETAUTH_ADMIN_KEY" "$@"
}

# Fails unless the last fa_api call returned the expected status.
fa_expect_status()
{
	local expected=$1 what=$2
	[[ $FA_STATUS == "$expected" ]] ||
		fa_fail "$what: expected HTTP $expected, got $FA_STATUS:" \
			"$FA_BODY"
}

# ---------------------------------------------------------------------------
# SQL.

# Runs SQL as the service role and prints unaligned rows, fields separated
# by '|'. Extra arguments go to psql (for example -v name=value).
fa_sql()
{
	local sql=$1
	shift
	psql -X -q -A -t -v ON_ERROR_STOP=1 "$@" -c "$sql"
}

# Runs SQL as the broker role (read only).
fa_sql_broker()
{
	PGUSER=$FLEETAUTH_BROKER_PGUSER \
		PGPASSWORD=$FLEETAUTH_BROKER_PGPASSWORD fa_sql "$@"
}

# ---------------------------------------------------------------------------
# MQTT. Arguments after the fixed ones go to mosquitto_pub or mosquitto_sub
# unchanged (-t, -m, -u, -P, -i, -V mqttv5, -q, ...). Every client runs under
# timeout(1) so that a broker that never responds cannot hang a test.

fa_mqtt_run()
{
	local out=$FA_TMP/mqtt-out err=$FA_TMP/mqtt-err
	FA_MQTT_RC=0
	timeout --kill-after=2 "$((FA_CLIENT_TIMEOUT + 5))" "$@" \
		>"$out" 2>"$err" </dev/null || FA_MQTT_RC=$?
	FA_MQTT_OUT=$(cat "$out")
	FA_MQTT_ERR=$(cat "$err")
	rm -f "$out" "$err"
}

# Publishes on the plain listener of broker 1.
fa_mqtt_pub()
{
	fa_mqtt_run mosquitto_pub -h "$MQTT_HOST" -p "$MQTT_PORT" "$@"
}

# Subscribes on the plain listener; -W (seconds) ends the client when no
# message arrives. Pass -C N to stop after N messages.
fa_mqtt_sub()
{
	fa_mqtt_run mosquitto_sub -h "$MQTT_HOST" -p "$MQTT_PORT" \
		-W "$FA_CLIENT_TIMEOUT" "$@"
}

# Prints the mosquitto_pub/mosquitto_sub options for the TLS listener of
# broker 1 with a client certificate: use as
#   fa_mqtt_pub $(fa_tls_args cert.pem key.pem) -u dev-1 -t ...
# (the paths must not contain spaces).
fa_tls_args()
{
	local cert=$1 key=$2
	printf -- '-p %s --cafile %s --cert %s --key %s' "$MQTT_TLS_PORT" \
		"$FLEETAUTH_BROKER_CA_FILE" "$cert" "$key"
}

# Starts mosquitto_sub in the background, writing messages to file (one per
# line; add -v for "topic payload"). Sets FA_SUB_PID; the subscriber is
# killed when the test exits. Arguments as for mosquitto_sub.
fa_mqtt_sub_bg()
{
	local file=$1
	shift
	mosquitto_sub -h "$MQTT_HOST" -p "$MQTT_PORT" "$@" \
		>"$file" 2>"$file.err" </dev/null &
	FA_SUB_PID=$!
	fa_on_exit "kill $FA_SUB_PID 2>/dev/null"
}

# Waits up to timeout seconds until mosquitto_sub, with the given arguments,
# connects to broker 1 and has its subscriptions acknowledged. A user made
# through the API reaches the broker a moment later, and mosquitto_sub does
# not retry a refused CONNECT, so start long-lived subscribers after this.
fa_wait_subscribe()
{
	local timeout=$1
	shift
	fa_wait_for "timeout 5 mosquitto_sub -h '$MQTT_HOST' -p '$MQTT_PORT' \
		-E $(printf '%q ' "$@") >/dev/null 2>&1 </dev/null" "$timeout"
}

# True while process pid runs (for example a subscriber that the broker
# should disconnect). A process that has exited but is not yet reaped by its
# parent (state Z) counts as stopped.
fa_pid_running()
{
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*") "}
	[[ ${stat:0:1} != Z ]]
}

# ---------------------------------------------------------------------------
# Tokens and certificates.

fa_b64url()
{
	openssl base64 -A | tr '+/' '-_' | tr -d '='
}

# Prints the kid of the current signing key.
fa_current_kid()
{
	local kid
	kid=$(fa_sql "SELECT kid FROM signing_keys WHERE status = 'current'")
	[[ -n $kid ]] || fa_fail "no signing key with status current in" \
		"signing_keys"
	printf '%s\n' "$kid"
}

# Converts a DER ECDSA signature on stdin into the JWS form: r and s as 32
# big-endian bytes each, concatenated (RFC 7518, section 3.4).
fa_ecdsa_der_to_raw()
{
	local der=$FA_TMP/ecdsa.der
	cat >"$der"
	openssl asn1parse -inform DER -in "$der" |
		awk -F: '/INTEGER/ { print $NF }' |
		perl -ne 'chomp; s/^(00)+//;
			print pack("H*", ("0" x (64 - length)) . $_)'
	rm -f "$der"
}

# Signs header and claims (both JSON text) as a JWS compact token with the
# PEM private key (default: the stack's token-signing key) and prints it.
# The header's alg picks the algorithm: RS256 and ES256 sign with the key,
# none leaves the signature empty. The JSON is used byte for byte, so a test
# can send anything, including malformed or hostile values.
fa_jwt_sign()
{
	local header=$1 claims=$2 key=${3:-$FLEETAUTH_SIGNING_KEY}
	local alg input signature
	alg=$(jq -r '.alg // empty' <<<"$header" 2>/dev/null || true)
	input="$(printf '%s' "$header" | fa_b64url).$(printf '%s' "$claims" |
		fa_b64url)"
	case $alg in
	RS256)
		signature=$(printf '%s' "$input" |
			openssl dgst -sha256 -sign "$key" | fa_b64url)
		;;
	ES256)
		signature=$(printf '%s' "$input" |
			openssl dgst -sha256 -sign "$key" |
			fa_ecdsa_der_to_raw | fa_b64url)
		;;
	none | '') signature= ;;
	*) fa_fail "fa_jwt_sign: cannot sign alg '$alg'" ;;
	esac
	printf '%s.%s\n' "$input" "$signature"
}

# Prints a standard claim set for sub with role and carrier ('' for a
# platform role), valid from now for ttl seconds (default 900). Extra JSON
# given as $4 is merged over it, so a test can override or add any claim:
#   fa_claims drv-ann driver acme 900 '{"exp": 1}'
fa_claims()
{
	local sub=$1 role=$2 carrier=$3 ttl=${4:-900} extra=${5:-'{}'}
	local now jti
	now=$(date +%s)
	jti=$(openssl rand -hex 16)
	jq -cn --arg sub "$sub" --arg role "$role" --arg carrier "$carrier" \
		--arg iss "$FLEETAUTH_ISSUER" --arg aud "$FLEETAUTH_AUDIENCE" \
		--arg jti "$jti" --argjson now "$now" --argjson ttl "$ttl" \
		--argjson extra "$extra" '
		{iss: $iss, aud: $aud, sub: $sub, role: $role,
		 amr: ["pwd"], iat: $now, nbf: $now, exp: ($now + $ttl),
		 jti: $jti}
		+ (if $carrier == "" then {} else {carrier: $carrier} end)
		+ $extra'
}

# Mints an access token signed with the stack's current signing key:
#   token=$(fa_mint_token "$(fa_claims drv-ann driver acme)")
# An optional second argument is merged over the header
# ({"alg": "RS256", "kid": current, "typ": "at+jwt"}).
fa_mint_token()
{
	local claims=$1 header_extra=${2:-'{}'} kid header
	kid=$(fa_current_kid)
	header=$(jq -cn --arg kid "$kid" --argjson extra "$header_extra" \
		'{alg: "RS256", kid: $kid, typ: "at+jwt"} + $extra')
	fa_jwt_sign "$header" "$claims"
}

# Issues a client certificate for common name cn, signed by the fleet CA
# (or by ca_cert/ca_key when given), into FA_TMP/<cn>.pem and <cn>.key. The
# certificate is not registered in the database: fleetauthd's enrollment is
# the way to get a known one.
fa_make_client_cert()
{
	local cn=$1 ca_cert=${2:-$FLEETAUTH_CA_FILE}
	local ca_key=${3:-$FLEETAUTH_CA_KEY_FILE}
	local base=$FA_TMP/$cn
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$base.key" 2>/dev/null ||
		fa_fail "openssl could not generate a key for $cn"
	openssl req -new -key "$base.key" -subj "/CN=$cn" \
		-out "$base.csr" 2>/dev/null ||
		fa_fail "openssl could not create a CSR for $cn"
	openssl x509 -req -in "$base.csr" -CA "$ca_cert" -CAkey "$ca_key" \
		-set_serial "0x$(openssl rand -hex 16)" -days 1 -sha256 \
		-extfile "$FLEETAUTH_OPENSSL_CONFIG" -extensions client_ext \
		-out "$base.pem" 2>/dev/null ||
		fa_fail "openssl could not sign the certificate for $cn"
}

# Creates a self-signed CA (not trusted by the broker) in FA_TMP/<name>.pem
# and <name>.key, for tests of certificates from a foreign CA.
fa_make_foreign_ca()
{
	local name=$1 base=$FA_TMP/$1
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$base.key" 2>/dev/null ||
		fa_fail "openssl could not generate a key for CA $name"
	openssl req -config "$FLEETAUTH_OPENSSL_CONFIG" -x509 -new \
		-key "$base.key" -sha256 -days 1 -subj "/CN=$name" \
		-extensions ca_ext -out "$base.pem" 2>/dev/null ||
		fa_fail "openssl could not create CA $name"
}
