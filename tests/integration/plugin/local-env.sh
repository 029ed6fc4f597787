#!/usr/bin/env bash
# Starts a minimal stack for the plugin tests without fleetauthd: a private
# PostgreSQL cluster with the schema applied, and one Mosquitto broker with
# the plugin on free 127.0.0.1 ports. It writes DIR/env with the same
# variable names as tools/stack, so tests/integration/plugin/run.sh runs
# against either.
#
#   local-env.sh up DIR BUILD_DIR   start; BUILD_DIR has plugin/fleetauth_plugin.so
#   local-env.sh down DIR           stop what "up" started
#   local-env.sh restart-db DIR     restart PostgreSQL on the same port
#   local-env.sh restart-broker DIR restart Mosquitto on the same ports
set -euo pipefail

readonly SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
readonly PG_BINDIR=${FLEETAUTH_PG_BINDIR:-/usr/lib/postgresql/15/bin}

die()
{
	printf 'local-env: error: %s\n' "$*" >&2
	exit 1
}

as_pg()
{
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# Prints a free port in 20000-31999, below Linux's default ephemeral range
# (32768-60999), so that no outgoing connection holds it.
free_port()
{
	local port
	for _ in $(seq 1 100); do
		port=$((RANDOM % 12000 + 20000))
		if [[ -z $(ss -Hltn "sport = :$port") ]]; then
			printf '%s\n' "$port"
			return 0
		fi
	done
	die "no free port found in 20000-31999"
}

make_pki()
{
	local pki=$1
	mkdir -p "$pki"
	cat >"$pki/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = fleetauth test
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
[server_ext]
basicConstraints = critical,CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
[client_ext]
basicConstraints = critical,CA:FALSE
extendedKeyUsage = clientAuth
EOF
	openssl ecparam -name prime256v1 -genkey -noout -out "$pki/fleet-ca.key"
	openssl req -config "$pki/openssl.cnf" -x509 -new -sha256 -days 30 \
		-key "$pki/fleet-ca.key" -subj "/CN=fleetauth test fleet CA" \
		-extensions ca_ext -out "$pki/fleet-ca.pem"
	openssl ecparam -name prime256v1 -genkey -noout -out "$pki/broker.key"
	openssl req -config "$pki/openssl.cnf" -new -key "$pki/broker.key" \
		-subj "/CN=localhost" -out "$pki/broker.csr"
	openssl x509 -req -in "$pki/broker.csr" -CA "$pki/fleet-ca.pem" \
		-CAkey "$pki/fleet-ca.key" -set_serial 1 -days 30 -sha256 \
		-extfile "$pki/openssl.cnf" -extensions server_ext \
		-out "$pki/broker.pem" 2>/dev/null
	chmod 0644 "$pki"/*
}

write_broker_config()
{
	local dir=$1
	# shellcheck disable=SC1091
	. "$dir/ports"
	cat >"$dir/mosquitto.conf" <<EOF
user root
per_listener_settings false
allow_anonymous false
persistence false
log_dest file $dir/broker.log
log_type all
connection_messages true
plugin $PLUGIN
plugin_opt_db_conninfo host=127.0.0.1 port=$PG_PORT dbname=fleetauth user=fleetauth_broker password=broker connect_timeout=5
plugin_opt_issuer fleetauth
plugin_opt_audience fleetauth-mqtt
plugin_opt_failed_connect_limit ${FAILED_CONNECT_LIMIT:-50}
plugin_opt_denial_log_interval 2
listener $MQTT_PORT 127.0.0.1
listener $MQTT_TLS_PORT 127.0.0.1
cafile $dir/pki/fleet-ca.pem
certfile $dir/pki/broker.pem
keyfile $dir/pki/broker.key
require_certificate true
EOF
}

start_broker()
{
	local dir=$1
	mosquitto -c "$dir/mosquitto.conf" >>"$dir/broker.out" 2>&1 &
	printf '%s\n' "$!" >"$dir/broker.pid"
	# shellcheck disable=SC1091
	. "$dir/ports"
	for _ in $(seq 1 50); do
		if [[ -n $(ss -Hltn "sport = :$MQTT_PORT") ]]; then
			return 0
		fi
		kill -0 "$(cat "$dir/broker.pid")" 2>/dev/null ||
			die "mosquitto exited; see $dir/broker.log"
		sleep 0.1
	done
	die "mosquitto did not listen on $MQTT_PORT within 5 s"
}

stop_broker()
{
	local dir=$1 pid
	[[ -f $dir/broker.pid ]] || return 0
	pid=$(cat "$dir/broker.pid")
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	rm -f "$dir/broker.pid"
}

psql_super()
{
	as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$1/pg" -p "$PG_PORT" \
		-U postgres "${@:2}"
}

up()
{
	local dir=$1 build=$2
	[[ -e $dir ]] && die "$dir exists; choose a new directory"
	PLUGIN=$(cd "$build" && pwd)/plugin/fleetauth_plugin.so
	[[ -r $PLUGIN ]] || die "plugin not found at $PLUGIN; build it first"
	mkdir -p "$dir/pg"
	dir=$(cd "$dir" && pwd)
	chmod 0755 "$dir"
	chown postgres "$dir/pg" 2>/dev/null || true
	PG_PORT=$(free_port)
	MQTT_PORT=$(free_port)
	MQTT_TLS_PORT=$(free_port)
	printf 'PG_PORT=%s\nMQTT_PORT=%s\nMQTT_TLS_PORT=%s\nPLUGIN=%s\n' \
		"$PG_PORT" "$MQTT_PORT" "$MQTT_TLS_PORT" "$PLUGIN" >"$dir/ports"
	as_pg "$PG_BINDIR/initdb" -D "$dir/pg/data" -U postgres -A trust \
		-N >"$dir/initdb.log" 2>&1 || die "initdb failed; see $dir/initdb.log"
	cat <<EOF | as_pg tee -a "$dir/pg/data/postgresql.conf" >/dev/null
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$dir/pg'
fsync = off
EOF
	as_pg "$PG_BINDIR/pg_ctl" start -D "$dir/pg/data" -w \
		-l "$dir/pg/postgres.log" >/dev/null
	psql_super "$dir" -d postgres <<'EOF'
CREATE ROLE fleetauth_service LOGIN PASSWORD 'service';
CREATE ROLE fleetauth_broker LOGIN PASSWORD 'broker';
CREATE DATABASE fleetauth OWNER fleetauth_service;
EOF
	for f in "$SRC_DIR"/schema/*.sql; do
		PGPASSWORD=service psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 \
			-p "$PG_PORT" -U fleetauth_service -d fleetauth -f "$f" \
			>/dev/null
	done
	make_pki "$dir/pki" 2>/dev/null
	write_broker_config "$dir"
	start_broker "$dir"
	cat >"$dir/env" <<EOF
FLEETAUTH_STACK_DIR=$dir
FLEETAUTH_PLUGIN_LOCAL_ENV=$SRC_DIR/tests/integration/plugin/local-env.sh
FLEETAUTH_ISSUER=fleetauth
FLEETAUTH_AUDIENCE=fleetauth-mqtt
MQTT_HOST=127.0.0.1
MQTT_PORT=$MQTT_PORT
MQTT_TLS_PORT=$MQTT_TLS_PORT
FLEETAUTH_CA_FILE=$dir/pki/fleet-ca.pem
FLEETAUTH_CA_KEY_FILE=$dir/pki/fleet-ca.key
FLEETAUTH_BROKER_CA_FILE=$dir/pki/fleet-ca.pem
FLEETAUTH_MOSQUITTO_CONFS=$dir/mosquitto.conf
FLEETAUTH_BROKER_LOG=$dir/broker.log
PGHOST=127.0.0.1
PGPORT=$PG_PORT
PGDATABASE=fleetauth
PGUSER=fleetauth_service
PGPASSWORD=service
FLEETAUTH_BROKER_PGUSER=fleetauth_broker
FLEETAUTH_BROKER_PGPASSWORD=broker
FLEETAUTH_PLUGIN=$PLUGIN
EOF
	printf 'local-env: up; environment in %s/env\n' "$dir"
}

down()
{
	local dir=$1
	stop_broker "$dir"
	if [[ -f $dir/pg/data/postmaster.pid ]]; then
		as_pg "$PG_BINDIR/pg_ctl" stop -D "$dir/pg/data" -m fast -w \
			>/dev/null || true
	fi
}

restart_db()
{
	local dir=$1
	as_pg "$PG_BINDIR/pg_ctl" restart -D "$dir/pg/data" -m fast -w \
		-l "$dir/pg/postgres.log" >/dev/null
}

main()
{
	local command=${1:-} dir=${2:-}
	[[ -n $dir ]] || die "usage: local-env.sh up|down|restart-db|restart-broker DIR [BUILD_DIR]"
	case $command in
	up) up "$dir" "${3:-$SRC_DIR/build}" ;;
	down) down "$dir" ;;
	restart-db) restart_db "$dir" ;;
	restart-broker)
		stop_broker "$dir"
		start_broker "$dir"
		;;
	*) die "unknown command $command: expected up, down, restart-db or restart-broker" ;;
	esac
}

main "$@"
