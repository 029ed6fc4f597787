#!/usr/bin/env bash
# The stack that tools/stack up started matches its documented contract:
# every env variable is set, secrets have private modes, GET /healthz
# returns 200, and the two database roles have exactly the rights they need.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"

for name in FLEETAUTH_URL FLEETAUTH_ADMIN_KEY MQTT_HOST MQTT_PORT \
	MQTT_TLS_PORT MQTT_PORTS MQTT_TLS_PORTS FLEETAUTH_CA_FILE \
	FLEETAUTH_BROKER_CA_FILE FLEETAUTH_STACK_DIR PGHOST PGPORT PGDATABASE \
	PGUSER PGPASSWORD FLEETAUTH_BROKER_PGUSER FLEETAUTH_BROKER_PGPASSWORD \
	FLEETAUTHD FLEETAUTHCTL FLEETAUTH_PLUGIN FLEETAUTH_SIGNING_KEY \
	FLEETAUTH_BUILD_DIR; do
	[[ -n ${!name:-} ]] || fa_fail "env file does not set $name"
done
[[ $FLEETAUTH_ADMIN_KEY =~ ^fak_[A-Za-z0-9_-]{43}$ ]] ||
	fa_fail "FLEETAUTH_ADMIN_KEY is not fak_ + 43 base64url characters"
for file in "$FLEETAUTH_CA_FILE" "$FLEETAUTH_BROKER_CA_FILE" \
	"$FLEETAUTH_SIGNING_KEY" "$FLEETAUTHD" "$FLEETAUTH_PLUGIN"; do
	[[ -r $file ]] || fa_fail "$file is missing or unreadable"
done

# Secrets are readable by their owner only.
for file in "$FLEETAUTH_STACK_DIR/env" "$FLEETAUTH_STACK_DIR/fleetauthd.conf" \
	"$FLEETAUTH_STACK_DIR/pki/kek.hex" "$FLEETAUTH_SIGNING_KEY" \
	"$FLEETAUTH_STACK_DIR/pki/fleet-ca.key"; do
	fa_expect_eq "$(stat -c %a "$file")" 600 "mode of $file"
done
kek=$(cat "$FLEETAUTH_STACK_DIR/pki/kek.hex")
[[ $kek =~ ^[0-9a-f]{64}$ ]] || fa_fail "kek.hex is not 64 hex characters"

# Every listener is on loopback only.
for port in ${PGPORT} ${FLEETAUTH_URL##*:} ${MQTT_PORTS//,/ } \
	${MQTT_TLS_PORTS//,/ }; do
	listeners=$(ss -Hltn "sport = :$port" | awk '{ print $4 }')
	[[ -n $listeners ]] || fa_fail "nothing listens on port $port"
	while read -r address; do
		fa_expect_eq "$address" "127.0.0.1:$port" "listen address"
	done <<<"$listeners"
done

fa_api_as "" GET /healthz
fa_expect_status 200 "GET /healthz"

# The broker certificate verifies against the CA given to clients, for the
# name and the address that clients use.
echo | openssl s_client -connect "127.0.0.1:$MQTT_TLS_PORT" \
	-CAfile "$FLEETAUTH_BROKER_CA_FILE" -verify_return_error \
	-verify_ip 127.0.0.1 >"$FA_TMP/s_client.out" 2>&1 || true
fa_expect_contains "$(cat "$FA_TMP/s_client.out")" \
	"Verify return code: 0 (ok)" "broker certificate verification"

# The migrations ran, and the service role owns what it created.
fa_expect_eq "$(fa_sql "SELECT count(*) FROM signing_keys
	WHERE status = 'current' AND alg = 'RS256'")" 1 "current signing keys"
fa_expect_eq "$(fa_sql "SELECT count(*) FROM fleet_ca
	WHERE status = 'current'")" 1 "current fleet CAs"
fa_expect_eq "$(fa_sql "SELECT rolsuper OR rolcreaterole OR rolcreatedb
	FROM pg_roles WHERE rolname = current_user")" f \
	"service role privileges"

# The signing key in the database is the stack's key: the public halves
# match.
public_pem=$(fa_sql "SELECT public_pem FROM signing_keys
	WHERE status = 'current'")
fa_expect_eq "$(printf '%s\n' "$public_pem" | openssl pkey -pubin -outform DER |
	sha256sum)" "$(openssl pkey -in "$FLEETAUTH_SIGNING_KEY" -pubout \
	-outform DER | sha256sum)" "public key of the current signing key"

# The broker role reads what the plugin needs and writes nothing.
fa_expect_eq "$(fa_sql_broker "SELECT count(*) FROM signing_keys
	WHERE status = 'current'")" 1 "broker read of signing_keys"
if fa_sql_broker "SELECT private_enc FROM signing_keys" \
	>"$FA_TMP/out" 2>&1; then
	fa_fail "broker role can read signing_keys.private_enc"
fi
fa_expect_contains "$(cat "$FA_TMP/out")" "permission denied" \
	"broker read of private_enc"
if fa_sql_broker "SELECT count(*) FROM api_keys" >"$FA_TMP/out" 2>&1; then
	fa_fail "broker role can read api_keys"
fi
if fa_sql_broker "INSERT INTO carriers (id, name) VALUES ('x', 'x')" \
	>"$FA_TMP/out" 2>&1; then
	fa_fail "broker role can insert into carriers"
fi
fa_expect_contains "$(cat "$FA_TMP/out")" "read-only transaction" \
	"broker insert into carriers"
