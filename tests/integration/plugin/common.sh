# shellcheck shell=bash
# Shared setup and checks for the plugin tests in this folder. Each
# test_*.sh script sources this file and calls fa_plugin_setup "$@" with the
# env file written by tools/stack (or by local-env.sh here). The setup builds
# the mqtt_watch client, inserts fixtures with SQL under a random suffix, so
# the tests can run repeatedly against one database, and starts a Mosquitto
# broker with the plugin on free 127.0.0.1 ports. The tests start their own
# brokers because they need particular plugin options and restarts.
# fa_plugin_finish prints the summary and exits 0 only when every check
# passed.
set -uo pipefail

readonly HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SRC_DIR=$(cd "$HERE/../../.." && pwd)
HOST=127.0.0.1
WORK=
RUN=$(openssl rand -hex 3)
PASSED=0
FAILED=0
BROKER_PIDS=()
CHILD_PIDS=()

cleanup()
{
	local status=$? pid
	for pid in "${CHILD_PIDS[@]}" "${BROKER_PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	wait 2>/dev/null
	if ((FAILED == 0 && status == 0)); then
		rm -rf "$WORK"
	else
		printf 'broker logs kept in %s\n' "$WORK"
	fi
}

# ---------------------------------------------------------------------------
# Reporting.

pass()
{
	PASSED=$((PASSED + 1))
	printf 'ok   %s\n' "$1"
}

fail()
{
	FAILED=$((FAILED + 1))
	printf 'FAIL %s: %s\n' "$1" "$2"
}

# expect NAME EXPECTED ACTUAL
expect()
{
	if [[ $2 == "$3" ]]; then
		pass "$1"
	else
		fail "$1" "expected $2, got $3"
	fi
}

sql()
{
	psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"
}

# Prints a free port in 20000-31999, below Linux's default ephemeral range
# (32768-60999), so that no outgoing connection holds it.
free_port()
{
	local port
	for _ in $(seq 1 100); do
		port=$((RANDOM % 12000 + 20000))
		[[ -z $(ss -Hltn "sport = :$port") ]] && {
			printf '%s\n' "$port"
			return 0
		}
	done
	return 1
}

now_ms()
{
	date +%s%3N
}

# wait_for FILE REGEX SECONDS: true once a line of FILE matches.
wait_for()
{
	local deadline=$(($(now_ms) + $3 * 1000))
	while (($(now_ms) < deadline)); do
		grep -Eq "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# ---------------------------------------------------------------------------
# Keys, certificates and tokens.

b64url()
{
	openssl base64 -A | tr '+/' '-_' | tr -d '='
}

make_pki()
{
	cat >"$WORK/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = test
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign
[server_ext]
basicConstraints = critical,CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
[client_ext]
basicConstraints = critical,CA:FALSE
extendedKeyUsage = clientAuth
EOF
	# The broker's server certificate and a second CA that the broker
	# does not trust for clients.
	openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/other-ca.key"
	openssl req -config "$WORK/openssl.cnf" -x509 -new -sha256 -days 2 \
		-key "$WORK/other-ca.key" -subj "/CN=other CA" \
		-extensions ca_ext -out "$WORK/other-ca.pem"
	issue_cert "$WORK/server" localhost "$WORK/other-ca.pem" \
		"$WORK/other-ca.key" server_ext
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
		-out "$WORK/signing.key" 2>/dev/null
	openssl pkey -in "$WORK/signing.key" -pubout -out "$WORK/signing.pub"
	chmod 0644 "$WORK"/*.pem "$WORK"/*.key "$WORK"/signing.pub
}

# issue_cert PREFIX CN CA_CERT CA_KEY EXTENSION
issue_cert()
{
	openssl ecparam -name prime256v1 -genkey -noout -out "$1.key"
	openssl req -config "$WORK/openssl.cnf" -new -key "$1.key" \
		-subj "/CN=$2" -out "$1.csr"
	openssl x509 -req -in "$1.csr" -CA "$3" -CAkey "$4" \
		-set_serial "0x$(openssl rand -hex 12)" -days 2 -sha256 \
		-extfile "$WORK/openssl.cnf" -extensions "$5" -out "$1.pem" \
		2>/dev/null
	chmod 0644 "$1.key" "$1.pem"
}

fingerprint()
{
	openssl x509 -in "$1" -outform DER | sha256sum | cut -d' ' -f1
}

# sign HEADER_JSON PAYLOAD_JSON: an RS256 JWT with the test signing key.
sign()
{
	local h p s
	h=$(printf '%s' "$1" | b64url)
	p=$(printf '%s' "$2" | b64url)
	s=$(printf '%s.%s' "$h" "$p" |
		openssl dgst -sha256 -sign "$WORK/signing.key" -binary | b64url)
	printf '%s.%s.%s' "$h" "$p" "$s"
}

# claims SUB ROLE CARRIER JTI [EXTRA_JSON [EXP_OFFSET]]
claims()
{
	local now carrier=""
	now=$(date +%s)
	[[ -n $3 ]] && carrier="\"carrier\":\"$3\","
	printf '{"iss":"fleetauth","aud":"fleetauth-mqtt","sub":"%s",' "$1"
	local exp=$((now + ${6:-600}))
	printf '"role":"%s",%s"jti":"%s","iat":%d,"exp":%d,' "$2" "$carrier" \
		"$4" "$((exp - 700))" "$exp"
	printf '"amr":["pwd","otp"]%s}' "${5:-}"
}

header()
{
	printf '{"alg":"RS256","typ":"at+jwt","kid":"%s"}' "${1:-$KID}"
}

# token SUB ROLE CARRIER [EXTRA_JSON]: a valid token with a fresh jti.
token()
{
	sign "$(header)" "$(claims "$1" "$2" "$3" "jti-$RANDOM$RANDOM" "${4:-}")"
}

# ---------------------------------------------------------------------------
# Fixtures.

C1=c1-$RUN
C2=c2-$RUN
ADMIN=admin-$RUN
OPERATOR=oper-$RUN
FM=fm-$RUN
DISP=disp-$RUN
ANALYST=anl-$RUN
DRV1=drv1-$RUN
DRV2=drv2-$RUN
DISP2=disp2-$RUN
TRUCK1=truck1-$RUN
TRUCK2=truck2-$RUN
PHONE1=phone1-$RUN
L1=load1-$RUN
L2=load2-$RUN
FAM1=fam1-$RUN
KID=kid-$RUN

insert_cert()
{
	local device=$1 prefix=$2 serial
	serial=$(openssl x509 -in "$prefix.pem" -noout -serial | cut -d= -f2 |
		tr 'A-F' 'a-f')
	sql "INSERT INTO device_certificates (serial, device_id,
		fingerprint_sha256, not_before, not_after, pem)
		VALUES ('$serial', '$device', '$(fingerprint "$prefix.pem")',
		now() - interval '1 hour', now() + interval '1 day',
		'$(cat "$prefix.pem")')"
}

insert_fixtures()
{
	local pem
	pem=$(cat "$WORK/signing.pub")
	sql "INSERT INTO signing_keys (kid, alg, public_pem, private_enc,
		kek_id, status, publish_until) VALUES ('$KID', 'RS256', '$pem',
		'\\x00', 'test', 'previous', now() + interval '1 hour')"
	sql "INSERT INTO carriers (id, name) VALUES ('$C1', 'c1'), ('$C2', 'c2')"
	local u
	for u in "$ADMIN" "$OPERATOR" "$FM" "$DISP" "$ANALYST" "$DRV1" \
		"$DRV2" "$DISP2"; do
		sql "INSERT INTO principals (id, kind) VALUES ('$u', 'user')"
	done
	for u in "$TRUCK1" "$TRUCK2" "$PHONE1"; do
		sql "INSERT INTO principals (id, kind) VALUES ('$u', 'device')"
	done
	sql "INSERT INTO users (id, carrier_id, role, password_hash) VALUES
		('$ADMIN', NULL, 'system_admin', 'x'),
		('$OPERATOR', NULL, 'system_operator', 'x'),
		('$FM', '$C1', 'fleet_manager', 'x'),
		('$DISP', '$C1', 'dispatcher', 'x'),
		('$ANALYST', '$C1', 'fleet_analyst', 'x'),
		('$DRV1', '$C1', 'driver', 'x'),
		('$DRV2', '$C1', 'driver', 'x'),
		('$DISP2', '$C2', 'dispatcher', 'x')"
	sql "INSERT INTO devices (id, carrier_id, device_type, status, user_id,
		created_by) VALUES
		('$TRUCK1', '$C1', 'truck', 'active', NULL, 'test'),
		('$TRUCK2', '$C1', 'truck', 'active', NULL, 'test'),
		('$PHONE1', '$C1', 'phone', 'active', '$DRV2', 'test')"
	sql "INSERT INTO loads (carrier_id, id, created_by) VALUES
		('$C1', '$L1', 'test'), ('$C1', '$L2', 'test')"
	sql "INSERT INTO load_assignments (carrier_id, load_id, driver_id,
		assigned_by) VALUES ('$C1', '$L1', '$DRV1', 'test'),
		('$C1', '$L2', '$DRV2', 'test')"
	sql "INSERT INTO refresh_families (id, user_id, amr, expires_at)
		VALUES ('$FAM1', '$DRV1', '{pwd}', now() + interval '7 days')"
	issue_cert "$WORK/truck1" "$TRUCK1" "$CA_FILE" "$CA_KEY" client_ext
	issue_cert "$WORK/truck2" "$TRUCK2" "$CA_FILE" "$CA_KEY" client_ext
	issue_cert "$WORK/stranger" "$TRUCK1" "$WORK/other-ca.pem" \
		"$WORK/other-ca.key" client_ext
	insert_cert "$TRUCK1" "$WORK/truck1"
	insert_cert "$TRUCK2" "$WORK/truck2"
}

# ---------------------------------------------------------------------------
# Brokers.

# listens PORT PID: true when process PID listens on 127.0.0.1:PORT.
listens()
{
	ss -Hltnp "sport = :$1" 2>/dev/null | grep -q "pid=$2,"
}

# write_broker_config NAME [NAME=VALUE plugin options...]
write_broker_config()
{
	local name=$1 option
	shift
	printf 'user root\nper_listener_settings false\n'
	printf 'allow_anonymous false\npersistence false\n'
	printf 'log_dest file %s/%s.log\nlog_type all\n' "$WORK" "$name"
	printf 'plugin %s\n' "$PLUGIN"
	printf 'plugin_opt_db_conninfo host=%s port=%s dbname=%s user=%s password=%s connect_timeout=5\n' \
		"$PGHOST" "$PGPORT" "$PGDATABASE" "$BROKER_PGUSER" \
		"$BROKER_PGPASSWORD"
	for option in "$@"; do
		printf 'plugin_opt_%s\n' "${option/=/ }"
	done
	printf 'listener %s 127.0.0.1\n' "$PORT"
	printf 'listener %s 127.0.0.1\n' "$TLS_PORT"
	printf 'cafile %s\ncertfile %s\nkeyfile %s\n' "$CA_FILE" \
		"$WORK/server.pem" "$WORK/server.key"
	printf 'require_certificate true\n'
}

# start_broker NAME [NAME=VALUE plugin options...]: starts Mosquitto with
# the plugin and sets PORT, TLS_PORT and LAST_BROKER_PID. Tries new ports
# when another process took one first. Returns 1 if the broker did not come
# up.
start_broker()
{
	local name=$1 pid try
	for try in 1 2 3; do
		PORT=$(free_port)
		TLS_PORT=$(free_port)
		[[ $PORT == "$TLS_PORT" ]] && continue
		write_broker_config "$@" >"$WORK/$name.conf"
		mosquitto -c "$WORK/$name.conf" >"$WORK/$name.out" 2>&1 &
		pid=$!
		BROKER_PIDS+=("$pid")
		LAST_BROKER_PID=$pid
		# The first snapshot loads before the broker listens; allow
		# 30 s for large databases.
		for _ in $(seq 1 600); do
			listens "$PORT" "$pid" && listens "$TLS_PORT" "$pid" &&
				return 0
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -0 "$pid" 2>/dev/null && return 1
		grep -q 'Address already in use' "$WORK/$name.log" \
			"$WORK/$name.out" 2>/dev/null || return 1
	done
	return 1
}

# ---------------------------------------------------------------------------
# Clients. Devices (ids starting with "truck") connect over TLS with their
# certificate; everyone else with a token on the plain listener.


# watch OUT CLIENT_ID USERNAME PASSWORD TOPIC [CERT_PREFIX]: runs mqtt_watch
# in the background; sets WATCH_PID.
watch()
{
	local out=$1 cid=$2 user=$3 pw=$4 topic=$5 cert=${6:-}
	if [[ -n $cert ]]; then
		"$WATCH" "$HOST" "$TLS_PORT" "$cid" "$user" - "$topic" "$VERSION" \
			"$WORK/other-ca.pem" "$cert.pem" "$cert.key" >"$out" 2>&1 &
	else
		"$WATCH" "$HOST" "$PORT" "$cid" "$user" "$pw" "$topic" \
			"$VERSION" >"$out" 2>&1 &
	fi
	WATCH_PID=$!
	CHILD_PIDS+=("$WATCH_PID")
}

stop_watch()
{
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# publish CLIENT_ID PASSWORD TOPIC PAYLOAD [CERT_PREFIX] [extra args]
publish()
{
	local cid=$1 pw=$2 topic=$3 payload=$4 cert=${5:-}
	local v=mqttv311
	[[ $VERSION == 5 ]] && v=mqttv5
	if [[ -n $cert ]]; then
		timeout 5 mosquitto_pub -h "$HOST" -p "$TLS_PORT" -V "$v" \
			-i "$cid" -u "$cid" --cafile "$WORK/other-ca.pem" \
			--cert "$cert.pem" --key "$cert.key" -q 1 -t "$topic" \
			-m "$payload" "${@:6}" >/dev/null 2>&1
	else
		timeout 5 mosquitto_pub -h "$HOST" -p "$PORT" -V "$v" -i "$cid" \
			-u "$cid" -P "$pw" -q 1 -t "$topic" -m "$payload" \
			"${@:6}" >/dev/null 2>&1
	fi
}

# credential ID: the password (token) or certificate prefix of an id.
cert_of()
{
	case $1 in
	"$TRUCK1") printf '%s' "$WORK/truck1" ;;
	"$TRUCK2") printf '%s' "$WORK/truck2" ;;
	esac
}

token_of()
{
	case $1 in
	"$ADMIN" | "$OPERATOR") token "$1" "${ROLE[$1]}" "" ;;
	"$TRUCK1" | "$TRUCK2") printf '-' ;;
	*) token "$1" "${ROLE[$1]}" "${CARRIER[$1]}" ;;
	esac
}

declare -A ROLE CARRIER
set_roles()
{
	ROLE=([$ADMIN]=system_admin [$OPERATOR]=system_operator
		[$FM]=fleet_manager [$DISP]=dispatcher [$ANALYST]=fleet_analyst
		[$DRV1]=driver [$DRV2]=driver [$DISP2]=dispatcher)
	CARRIER=([$FM]=$C1 [$DISP]=$C1 [$ANALYST]=$C1 [$DRV1]=$C1
		[$DRV2]=$C1 [$DISP2]=$C2)
}

# pub_check EXPECT(allow|deny) PUBLISHER TOPIC OBSERVER: publishes as
# PUBLISHER and reports whether OBSERVER, subscribed to TOPIC, received it.
pub_check()
{
	local expect_word=$1 who=$2 topic=$3 observer=$4
	local name="v$VERSION publish $expect_word: ${who%-"$RUN"} -> ${topic//-"$RUN"/}"
	local out=$WORK/obs.$RANDOM payload=m-$RANDOM$RANDOM got=deny
	watch "$out" "$observer" "$observer" "$(token_of "$observer")" "$topic" \
		"$(cert_of "$observer")"
	local wpid=$WATCH_PID
	if ! wait_for "$out" '^subscribed [0-9]+ [012]$' 3; then
		fail "$name" "observer ${observer%-"$RUN"} could not subscribe: $(tr '\n' ' ' <"$out")"
		stop_watch "$wpid"
		return
	fi
	publish "$who" "$(token_of "$who")" "$topic" "$payload" "$(cert_of "$who")"
	wait_for "$out" " $payload\$" 1 && got=allow
	stop_watch "$wpid"
	expect "$name" "$expect_word" "$got"
}

# sub_check EXPECT(allow|deny) WHO FILTER
sub_check()
{
	local expect_word=$1 who=$2 filter=$3
	local name="v$VERSION subscribe $expect_word: ${who%-"$RUN"} -> ${filter//-"$RUN"/}"
	local out=$WORK/sub.$RANDOM got=deny
	watch "$out" "$who" "$who" "$(token_of "$who")" "$filter" "$(cert_of "$who")"
	local wpid=$WATCH_PID
	if ! wait_for "$out" '^(subscribed|refused|disconnected) ' 3; then
		fail "$name" "no SUBACK within 3 s"
		stop_watch "$wpid"
		return
	fi
	grep -Eq '^subscribed [0-9]+ [012]$' "$out" && got=allow
	stop_watch "$wpid"
	expect "$name" "$expect_word" "$got"
}

# connect_result CLIENT_ID USERNAME PASSWORD [CERT_PREFIX [CA]]: prints
# connected, refused or disconnected.
connect_result()
{
	local out=$WORK/conn.$RANDOM cid=$1 user=$2 pw=$3 cert=${4:-}
	if [[ -n $cert ]]; then
		"$WATCH" "$HOST" "$TLS_PORT" "$cid" "$user" - - "$VERSION" \
			"${5:-$WORK/other-ca.pem}" "$cert.pem" "$cert.key" \
			>"$out" 2>&1 &
	else
		"$WATCH" "$HOST" "$PORT" "$cid" "$user" "$pw" - "$VERSION" \
			>"$out" 2>&1 &
	fi
	local wpid=$!
	wait_for "$out" '^(connected|refused|disconnected) ' 5
	stop_watch "$wpid"
	local first
	first=$(grep -Eo '^(connected|refused|disconnected)' "$out" | head -n 1)
	printf '%s' "${first:-timeout}"
}

connect_check()
{
	local name="v$VERSION connect $1: $2"
	local got
	got=$(connect_result "${@:3}")
	[[ $got == connected ]] || got=deny
	[[ $got == connected ]] && got=allow
	expect "$name" "$1" "$got"
}

# ---------------------------------------------------------------------------
# Test groups.

test_topic_table()
{
	local t="fleet/$C1/devices/$TRUCK1/telemetry/gps"
	local cmd="fleet/$C1/devices/$TRUCK1/commands/reboot"
	local load="fleet/$C1/loads/$L1/status"
	local drv="fleet/$C1/loads/$L1/driver/position"
	local rate="fleet/$C1/loads/$L1/rate"
	local inbox="fleet/$C1/drivers/$DRV1/inbox"
	local status="fleet/$C1/drivers/$DRV1/status"

	pub_check allow "$TRUCK1" "$t" "$DISP"
	pub_check deny "$TRUCK2" "$t" "$DISP"
	pub_check deny "$DISP" "$t" "$ANALYST"
	sub_check allow "$DISP" "$t"
	sub_check allow "$ANALYST" "$t"
	sub_check allow "$FM" "$t"
	sub_check deny "$DRV1" "$t"
	sub_check deny "$DISP2" "$t"

	pub_check allow "$DISP" "$cmd" "$TRUCK1"
	pub_check allow "$FM" "$cmd" "$TRUCK1"
	pub_check deny "$DRV1" "$cmd" "$TRUCK1"
	pub_check deny "$ANALYST" "$cmd" "$TRUCK1"
	pub_check deny "$DISP2" "$cmd" "$TRUCK1"
	sub_check deny "$TRUCK2" "$cmd"
	sub_check deny "$DISP" "$cmd"

	pub_check allow "$DISP" "$load" "$DRV1"
	pub_check deny "$DRV1" "$load" "$DISP"
	sub_check allow "$DRV1" "$load"
	sub_check deny "$DRV2" "$load"
	sub_check deny "$DISP2" "$load"

	pub_check allow "$DRV1" "$drv" "$DISP"
	pub_check deny "$DRV2" "$drv" "$DISP"

	pub_check allow "$DISP" "$rate" "$FM"
	pub_check deny "$DRV1" "$rate" "$DISP"
	sub_check deny "$DRV1" "$rate"
	sub_check allow "$DISP" "$rate"

	pub_check allow "$DISP" "$inbox" "$DRV1"
	pub_check deny "$DRV2" "$inbox" "$DRV1"
	sub_check deny "$DRV2" "$inbox"

	pub_check allow "$DRV1" "$status" "$DISP"
	pub_check deny "$DRV2" "$status" "$DISP"
	sub_check deny "$DRV2" "$status"

	sub_check allow "$ADMIN" '$SYS/#'
	sub_check allow "$OPERATOR" '$SYS/broker/uptime'
	sub_check deny "$DISP" '$SYS/#'
	sub_check deny "$TRUCK1" '$SYS/#'
	pub_check deny "$ADMIN" '$SYS/broker/fake' "$OPERATOR"

	sub_check deny "$ADMIN" "other/topic"
	sub_check deny "$FM" "#"
	sub_check deny "$FM" "fleet/$C1/#"
	sub_check allow "$DISP" "fleet/$C1/devices/+/telemetry/#"
	sub_check deny "$DRV1" "fleet/$C1/loads/+/status"
	sub_check deny "$DRV1" "fleet/$C1/loads/$L1/#"
	sub_check allow "$DISP" "\$share/g1/fleet/$C1/devices/$TRUCK1/telemetry/#"
	sub_check deny "$DRV1" "\$share/g1/$rate"
	sub_check deny "$DISP" "\$share//$t"
}

test_tokens()
{
	local now claims_ok
	now=$(date +%s)
	claims_ok=$(claims "$DRV1" driver "$C1" "jti-a$RANDOM")
	connect_check allow "valid token" "$DRV1" "$DRV1" \
		"$(sign "$(header)" "$claims_ok")"
	connect_check allow "client id with suffix" "$DRV1:phone" "$DRV1" \
		"$(sign "$(header)" "$claims_ok")"
	connect_check deny "client id of another user" "$DRV1" "$DRV2" \
		"$(token "$DRV2" driver "$C1")"
	connect_check deny "client id with /" "$DRV1:a/b" "$DRV1" \
		"$(token "$DRV1" driver "$C1")"
	connect_check deny "client id with +" "$DRV1+" "$DRV1" \
		"$(token "$DRV1" driver "$C1")"
	connect_check deny "username with #" "$DRV1" "$DRV1#" \
		"$(token "$DRV1" driver "$C1")"
	connect_check deny "username is not sub" "$DRV2" "$DRV2" \
		"$(token "$DRV1" driver "$C1")"
	connect_check deny "no username and no password" "$DRV1" - -
	connect_check deny "username without password" "$DRV1" "$DRV1" -
	connect_check deny "garbage password" "$DRV1" "$DRV1" "not-a-token"
	connect_check deny "expired token" "$DRV1" "$DRV1" \
		"$(sign "$(header)" "$(claims "$DRV1" driver "$C1" "jti-e$RANDOM" "" -300)")"
	connect_check deny "unknown kid" "$DRV1" "$DRV1" \
		"$(sign "$(header "nokid-$RUN")" "$claims_ok")"
	local h p
	h=$(printf '{"alg":"none","kid":"%s"}' "$KID" | b64url)
	p=$(printf '%s' "$claims_ok" | b64url)
	connect_check deny "alg none" "$DRV1" "$DRV1" "$h.$p."
	h=$(printf '{"alg":"HS256","typ":"at+jwt","kid":"%s"}' "$KID" | b64url)
	local mac
	mac=$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -mac HMAC \
		-macopt "hexkey:$(xxd -p "$WORK/signing.pub" | tr -d '\n')" \
		-binary | b64url)
	connect_check deny "HS256 signed with the public key" "$DRV1" "$DRV1" \
		"$h.$p.$mac"
	local tampered
	tampered=$(sign "$(header)" "$claims_ok")
	tampered="${tampered%.*}.$(printf 'x%.0s' {1..10} | b64url)"
	connect_check deny "bad signature" "$DRV1" "$DRV1" "$tampered"
	connect_check deny "wrong audience" "$DRV1" "$DRV1" \
		"$(sign "$(header)" "$(claims "$DRV1" driver "$C1" "jti-w$RANDOM" | sed 's/fleetauth-mqtt/other/')")"
	connect_check deny "role in token is not the user's" "$DRV1" "$DRV1" \
		"$(token "$DRV1" dispatcher "$C1")"
	connect_check deny "carrier in token is not the user's" "$DRV1" \
		"$DRV1" "$(token "$DRV1" driver "$C2")"
	connect_check deny "unknown user" "ghost-$RUN" "ghost-$RUN" \
		"$(token "ghost-$RUN" driver "$C1")"
	connect_check allow "token bound to an active phone" "$DRV2" "$DRV2" \
		"$(token "$DRV2" driver "$C1" ",\"did\":\"$PHONE1\"")"
}

test_devices()
{
	connect_check allow "device certificate" "$TRUCK1" "$TRUCK1" - \
		"$WORK/truck1"
	connect_check allow "device client id with suffix" "$TRUCK1:modem" \
		"$TRUCK1" - "$WORK/truck1"
	connect_check deny "certificate of another device" "$TRUCK2" \
		"$TRUCK2" - "$WORK/truck1"
	connect_check deny "device without username" "$TRUCK1" - - \
		"$WORK/truck1"
	connect_check deny "device client id of another device" "$TRUCK2" \
		"$TRUCK1" - "$WORK/truck1"
	connect_check deny "certificate from another CA" "$TRUCK1" "$TRUCK1" \
		- "$WORK/stranger"
}

test_will_and_retained()
{
	local rate="fleet/$C1/loads/$L1/rate"
	local status="fleet/$C1/drivers/$DRV1/status"
	local out=$WORK/will.$RANDOM v=mqttv311 payload
	[[ $VERSION == 5 ]] && v=mqttv5

	# An allowed will is delivered, a will to a forbidden topic is not.
	for case in "allow $status" "deny $rate"; do
		local expect_word=${case%% *} topic=${case#* }
		payload=will-$RANDOM
		watch "$out" "$DISP" "$DISP" "$(token_of "$DISP")" "$topic"
		local wpid=$WATCH_PID
		wait_for "$out" '^subscribed [0-9]+ [012]$' 3
		mosquitto_sub -h "$HOST" -p "$PORT" -V "$v" -i "$DRV1" -u "$DRV1" \
			-P "$(token_of "$DRV1")" -t "fleet/$C1/drivers/$DRV1/inbox" \
			--will-topic "$topic" --will-payload "$payload" \
			>/dev/null 2>&1 &
		local spid=$!
		sleep 0.5
		kill -KILL "$spid" 2>/dev/null
		wait "$spid" 2>/dev/null
		local got=deny
		wait_for "$out" " $payload\$" 2 && got=allow
		stop_watch "$wpid"
		expect "v$VERSION will $expect_word: ${topic//-"$RUN"/}" \
			"$expect_word" "$got"
	done

	# A retained PUBLISH to a forbidden topic is not stored.
	payload=retained-$RANDOM
	publish "$DRV1" "$(token_of "$DRV1")" "$rate" "$payload" "" -r
	watch "$out.r" "$DISP" "$DISP" "$(token_of "$DISP")" "$rate"
	local rpid=$WATCH_PID got=deny
	wait_for "$out.r" " $payload\$" 2 && got=allow
	stop_watch "$rpid"
	expect "v$VERSION retained on forbidden topic not delivered" deny "$got"

	# A retained message is checked again when it is delivered.
	payload=retained-$RANDOM
	publish "$DISP" "$(token_of "$DISP")" "fleet/$C1/loads/$L2/status" \
		"$payload" "" -r
	watch "$out.s" "$DRV2" "$DRV2" "$(token_of "$DRV2")" \
		"fleet/$C1/loads/$L2/status"
	rpid=$WATCH_PID
	got=deny
	wait_for "$out.s" " $payload\$" 2 && got=allow
	stop_watch "$rpid"
	expect "v$VERSION retained delivered to assigned driver" allow "$got"
	publish "$DISP" "$(token_of "$DISP")" "fleet/$C1/loads/$L2/status" "" \
		"" -r
}

test_takeover()
{
	local out=$WORK/take.$RANDOM
	watch "$out" "$DRV1" "$DRV1" "$(token_of "$DRV1")" \
		"fleet/$C1/drivers/$DRV1/inbox"
	local wpid=$WATCH_PID
	wait_for "$out" '^subscribed ' 3
	local got
	got=$(connect_result "$DRV1" "$DRV2" "$(token_of "$DRV2")")
	expect "v$VERSION takeover by another user refused" refused "$got"
	sleep 0.3
	got=connected
	grep -q '^disconnected' "$out" && got=disconnected
	expect "v$VERSION session survives takeover attempt" connected "$got"
	stop_watch "$wpid"
}

# revocation_check NAME SQL CLIENT_ID USERNAME PASSWORD [CERT] [LIMIT_MS]:
# connects, runs SQL and measures how long until the broker disconnects.
revocation_check()
{
	local name=$1 statement=$2 out=$WORK/rev.$RANDOM limit=${7:-1000}
	watch "$out" "$3" "$4" "$5" - "${6:-}"
	local wpid=$WATCH_PID
	if ! wait_for "$out" '^connected ' 3; then
		fail "$name" "client did not connect: $(tr '\n' ' ' <"$out")"
		stop_watch "$wpid"
		return
	fi
	# Measure from the commit, not from the start of psql, which takes
	# a few hundred milliseconds on its own.
	local start
	start=$(psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$statement" \
		-c "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint" |
		tail -n 1)
	if ! wait_for "$out" '^disconnected ' 5; then
		fail "$name" "still connected 5 s after the change"
		stop_watch "$wpid"
		return
	fi
	local at elapsed
	at=$(awk '/^disconnected/ { print $2; exit }' "$out")
	elapsed=$((at - start))
	stop_watch "$wpid"
	if ((elapsed <= limit)); then
		pass "$name (${elapsed} ms)"
	else
		fail "$name" "disconnected after ${elapsed} ms, limit ${limit} ms"
	fi
	printf '%s %s\n' "$name" "$elapsed" >>"$WORK/latencies"
}

test_revocation()
{
	local jti=jti-r$RANDOM
	local tok
	tok=$(sign "$(header)" "$(claims "$DRV1" driver "$C1" "$jti")")
	revocation_check "v$VERSION revoked jti disconnects" \
		"INSERT INTO revoked_access_tokens (jti, expires_at)
		 VALUES ('$jti', now() + interval '1 hour')" \
		"$DRV1" "$DRV1" "$tok"
	connect_check deny "revoked jti" "$DRV1" "$DRV1" "$tok"

	local fam=fam-$VERSION-$RUN
	sql "INSERT INTO refresh_families (id, user_id, amr, expires_at)
		VALUES ('$fam', '$DRV1', '{pwd}', now() + interval '1 day')"
	sleep 0.3
	tok=$(token "$DRV1" driver "$C1" ",\"fam\":\"$fam\"")
	revocation_check "v$VERSION revoked family disconnects" \
		"UPDATE refresh_families SET revoked_at = now()
		 WHERE id = '$fam'" "$DRV1" "$DRV1" "$tok"
	connect_check deny "revoked family" "$DRV1" "$DRV1" "$tok"

	revocation_check "v$VERSION role change disconnects" \
		"UPDATE users SET role = 'dispatcher' WHERE id = '$DRV2'" \
		"$DRV2" "$DRV2" "$(token "$DRV2" driver "$C1")"
	sql "UPDATE users SET role = 'driver' WHERE id = '$DRV2'"
	sleep 0.3

	revocation_check "v$VERSION disabled user disconnects" \
		"UPDATE users SET status = 'disabled' WHERE id = '$DRV2'" \
		"$DRV2" "$DRV2" "$(token "$DRV2" driver "$C1")"
	sql "UPDATE users SET status = 'active' WHERE id = '$DRV2'"
	sleep 0.3

	revocation_check "v$VERSION revoked phone disconnects" \
		"UPDATE devices SET status = 'revoked' WHERE id = '$PHONE1'" \
		"$DRV2" "$DRV2" \
		"$(token "$DRV2" driver "$C1" ",\"did\":\"$PHONE1\"")"
	sql "UPDATE devices SET status = 'active' WHERE id = '$PHONE1'"
	sleep 0.3
}

test_device_revocation()
{
	revocation_check "v$VERSION revoked certificate disconnects" \
		"UPDATE device_certificates SET status = 'revoked',
		 revoked_at = now() WHERE device_id = '$TRUCK2'" \
		"$TRUCK2" "$TRUCK2" - "$WORK/truck2"
	connect_check deny "revoked certificate" "$TRUCK2" "$TRUCK2" - \
		"$WORK/truck2"
	revocation_check "v$VERSION revoked device disconnects" \
		"UPDATE devices SET status = 'revoked' WHERE id = '$TRUCK1'" \
		"$TRUCK1" "$TRUCK1" - "$WORK/truck1"
	connect_check deny "revoked device" "$TRUCK1" "$TRUCK1" - \
		"$WORK/truck1"
	sql "UPDATE devices SET status = 'active' WHERE id = '$TRUCK1'"
}

test_expiry()
{
	local out=$WORK/exp.$RANDOM tok
	# exp 33 s ahead with the default 30 s leeway: expires in about 3 s.
	tok=$(sign "$(header)" "$(claims "$DRV1" driver "$C1" "jti-x$RANDOM" "" -27)")
	watch "$out" "$DRV1" "$DRV1" "$tok" -
	local wpid=$WATCH_PID got=connected
	wait_for "$out" '^connected ' 3
	wait_for "$out" '^disconnected ' 6 && got=disconnected
	stop_watch "$wpid"
	expect "v$VERSION expired token disconnects" disconnected "$got"
}

test_unassignment()
{
	local topic="fleet/$C1/loads/$L1/status" out=$WORK/un.$RANDOM got
	watch "$out" "$DRV1" "$DRV1" "$(token_of "$DRV1")" "$topic"
	local wpid=$WATCH_PID
	wait_for "$out" '^subscribed [0-9]+ [012]$' 3
	publish "$DISP" "$(token_of "$DISP")" "$topic" before-$RUN
	got=deny
	wait_for "$out" " before-$RUN\$" 2 && got=allow
	expect "v$VERSION assigned driver receives" allow "$got"
	sql "DELETE FROM load_assignments WHERE carrier_id = '$C1'
		AND load_id = '$L1' AND driver_id = '$DRV1'"
	sleep 1
	publish "$DISP" "$(token_of "$DISP")" "$topic" after-$RUN
	got=deny
	wait_for "$out" " after-$RUN\$" 2 && got=allow
	expect "v$VERSION unassigned driver stops receiving" deny "$got"
	got=connected
	grep -q '^disconnected' "$out" && got=disconnected
	expect "v$VERSION unassigned driver stays connected" connected "$got"
	stop_watch "$wpid"
	sql "INSERT INTO load_assignments (carrier_id, load_id, driver_id,
		assigned_by) VALUES ('$C1', '$L1', '$DRV1', 'test')"
	sleep 0.5
}

restart_db()
{
	if [[ -n ${FLEETAUTH_PLUGIN_LOCAL_ENV:-} ]]; then
		"$FLEETAUTH_PLUGIN_LOCAL_ENV" restart-db "$FLEETAUTH_STACK_DIR"
	else
		"$SRC_DIR/tools/stack" restart-db "$FLEETAUTH_STACK_DIR"
	fi
}

test_db_restart()
{
	local topic="fleet/$C1/drivers/$DRV2/inbox" out=$WORK/db.$RANDOM got
	local jti=jti-db$RANDOM tok
	tok=$(sign "$(header)" "$(claims "$DRV2" driver "$C1" "$jti")")
	watch "$out" "$DRV2" "$DRV2" "$tok" "$topic"
	local wpid=$WATCH_PID
	wait_for "$out" '^subscribed [0-9]+ [012]$' 3
	if ! restart_db >/dev/null 2>&1; then
		fail "v$VERSION database restart" "restart-db failed"
		stop_watch "$wpid"
		return
	fi
	publish "$DISP" "$(token_of "$DISP")" "$topic" during-$RUN
	got=deny
	wait_for "$out" " during-$RUN\$" 2 && got=allow
	expect "v$VERSION client keeps working across database restart" \
		allow "$got"
	got=$(connect_result "$DISP" "$DISP" "$(token_of "$DISP")")
	expect "v$VERSION new CONNECT works after database restart" \
		connected "$got"
	# Wait for the feed to reconnect (backoff starts at 1 s), then check
	# that changes arrive again.
	local start
	start=$(psql -X -q -A -t -v ON_ERROR_STOP=1 -c "INSERT INTO
		revoked_access_tokens (jti, expires_at) VALUES ('$jti',
		now() + interval '1 hour')" \
		-c "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint" |
		tail -n 1)
	if wait_for "$out" '^disconnected ' 10; then
		pass "v$VERSION changes arrive after database restart ($(($(awk '/^disconnected/ { print $2; exit }' "$out") - start)) ms)"
	else
		fail "v$VERSION changes arrive after database restart" \
			"client not disconnected within 10 s"
	fi
	stop_watch "$wpid"
}

# start_proxy PORT: forwards 127.0.0.1:PORT to the database; sets PROXY_PID.
start_proxy()
{
	python3 "$HERE/tcp_proxy.py" "$1" "$PGPORT" >>"$WORK/proxy.out" 2>&1 &
	PROXY_PID=$!
	CHILD_PIDS+=("$PROXY_PID")
	for _ in $(seq 1 100); do
		[[ -n $(ss -Hltn "sport = :$1") ]] && return 0
		sleep 0.05
	done
	return 1
}

# The broker reaches the database through a proxy that the test stops, so
# the database itself stays up for everyone else.
test_db_loss()
{
	local proxy_port saved_pgport=$PGPORT got out=$WORK/loss.$RANDOM
	local jti=jti-loss$RANDOM tok
	proxy_port=$(free_port)
	start_proxy "$proxy_port" || {
		fail "database proxy" "did not start"
		return
	}
	PGPORT=$proxy_port
	start_broker loss stale_after=3 reconnect_max_delay=1 \
		failed_connect_limit=0
	local started=$?
	PGPORT=$saved_pgport
	if ((started != 0)); then
		fail "broker behind proxy" "did not start"
		return
	fi
	local loss_broker=$LAST_BROKER_PID
	tok=$(sign "$(header)" "$(claims "$DRV1" driver "$C1" "$jti")")
	watch "$out" "$DRV1" "$DRV1" "$tok" "fleet/$C1/drivers/$DRV1/inbox"
	local wpid=$WATCH_PID
	wait_for "$out" '^subscribed [0-9]+ [012]$' 3

	kill "$PROXY_PID"
	wait "$PROXY_PID" 2>/dev/null
	sleep 0.5
	got=$(connect_result "$DISP" "$DISP" "$(token_of "$DISP")")
	expect "CONNECT allowed before stale_after" connected "$got"
	sleep 3.5
	got=$(connect_result "$DISP" "$DISP" "$(token_of "$DISP")")
	expect "CONNECT denied after stale_after" refused "$got"
	got=connected
	grep -q '^disconnected' "$out" && got=disconnected
	expect "connected client kept without database" connected "$got"
	got=no
	grep -q 'fleetauth: database unavailable' "$WORK/loss.log" && got=yes
	expect "database loss logged" yes "$got"

	# A change made while the broker cannot see the database arrives
	# with the snapshot loaded after the reconnect.
	sql "INSERT INTO revoked_access_tokens (jti, expires_at)
		VALUES ('$jti', now() + interval '1 hour')"
	start_proxy "$proxy_port" || {
		fail "database proxy" "did not restart"
		stop_watch "$wpid"
		return
	}
	got=connected
	wait_for "$out" '^disconnected ' 10 && got=disconnected
	expect "change made during outage applied after reconnect" \
		disconnected "$got"
	got=$(connect_result "$DISP" "$DISP" "$(token_of "$DISP")")
	expect "CONNECT allowed after reconnect" connected "$got"
	stop_watch "$wpid"
	kill "$PROXY_PID" "$loss_broker" 2>/dev/null
}

test_start_failures()
{
	local port
	port=$(free_port)
	local saved_pgport=$PGPORT
	PGPORT=$port
	if start_broker nodb; then
		sleep 1
	fi
	local got=running
	kill -0 "$LAST_BROKER_PID" 2>/dev/null || got=stopped
	expect "broker refuses to start without database" stopped "$got"
	got=no
	grep -q 'fleetauth: connecting to the database failed' \
		"$WORK/nodb.log" "$WORK/nodb.out" 2>/dev/null && got=yes
	expect "start failure logged" yes "$got"

	start_broker nodb-open start_fail_closed=true >/dev/null
	sleep 0.5
	got=running
	kill -0 "$LAST_BROKER_PID" 2>/dev/null || got=stopped
	expect "start_fail_closed starts without database" running "$got"
	got=$(connect_result "$DISP" "$DISP" "$(token_of "$DISP")")
	expect "start_fail_closed denies CONNECT" refused "$got"
	kill "$LAST_BROKER_PID" 2>/dev/null
	PGPORT=$saved_pgport

	start_broker badopt leeway=1000 >/dev/null
	sleep 0.5
	got=no
	grep -q 'plugin_opt_leeway' "$WORK/badopt.log" "$WORK/badopt.out" \
		2>/dev/null && ! kill -0 "$LAST_BROKER_PID" 2>/dev/null && got=yes
	expect "invalid option stops the broker with its name" yes "$got"
}

test_throttle()
{
	start_broker throttle failed_connect_limit=3 \
		failed_connect_window=60 || {
		fail "throttle broker" "did not start"
		return
	}
	local i
	for i in 1 2 3; do
		connect_result "$DRV1" "$DRV1" "bad-$i" >/dev/null
	done
	local got
	got=$(connect_result "$DRV1" "$DRV1" "$(token_of "$DRV1")")
	expect "address refused after failed CONNECT limit" refused "$got"
	kill "$LAST_BROKER_PID" 2>/dev/null
}

# fa_plugin_setup ENV_FILE: loads the env file and prepares keys, fixtures
# and the main broker (failed_connect_limit off, because every test client
# connects from 127.0.0.1). Sets PORT and TLS_PORT.
fa_plugin_setup()
{
	[[ $# -eq 1 && -r $1 ]] || {
		printf 'usage: %s ENV_FILE (from tools/stack up DIR)\n' \
			"$(basename "$0")" >&2
		exit 2
	}
	set -a
	# shellcheck disable=SC1090
	. "$1"
	set +a
	PLUGIN=${FLEETAUTH_PLUGIN:?FLEETAUTH_PLUGIN missing from the env file}
	BROKER_PGUSER=${FLEETAUTH_BROKER_PGUSER:-fleetauth_broker}
	BROKER_PGPASSWORD=${FLEETAUTH_BROKER_PGPASSWORD:?FLEETAUTH_BROKER_PGPASSWORD missing from the env file}
	CA_FILE=${FLEETAUTH_CA_FILE:?FLEETAUTH_CA_FILE missing from the env file}
	CA_KEY=${FLEETAUTH_CA_KEY_FILE:?FLEETAUTH_CA_KEY_FILE missing: device certificates cannot be issued}
	WORK=$(mktemp -d /tmp/fleetauth-plugin-test.XXXXXX)
	chmod 0755 "$WORK"
	WATCH=$WORK/mqtt_watch
	trap cleanup EXIT
	cc -O2 -Wall -o "$WATCH" "$HERE/mqtt_watch.c" -lmosquitto || {
		printf 'building mqtt_watch failed; install libmosquitto-dev\n' >&2
		exit 1
	}
	make_pki 2>/dev/null
	insert_fixtures
	set_roles
	start_broker main failed_connect_limit=0 || {
		printf 'broker did not start; log:\n' >&2
		cat "$WORK/main.log" "$WORK/main.out" >&2
		exit 1
	}
	MAIN_PORT=$PORT
	MAIN_TLS_PORT=$TLS_PORT
	VERSION=5
}

# Runs a test group once per MQTT version (3.1.1 and 5) on the main broker.
for_each_version()
{
	for VERSION in 3 5; do
		PORT=$MAIN_PORT
		TLS_PORT=$MAIN_TLS_PORT
		"$@"
	done
}

fa_plugin_finish()
{
	printf '\n%d passed, %d failed\n' "$PASSED" "$FAILED"
	((FAILED == 0))
	exit
}
