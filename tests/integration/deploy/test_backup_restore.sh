#!/usr/bin/env bash
# tools/backup and tools/restore carry the whole fleetauth database into a
# fresh PostgreSQL cluster:
#   1. fixtures through the HTTP API and SQL: a carrier, users (one with a
#      password), two enrolled trucks of which one is revoked, loads and
#      load assignments;
#   2. tools/backup of the stack's database;
#   3. tools/restore into a new cluster (initdb in /tmp, on its own loopback
#      port) that has the two roles. A second restore into the same
#      database must be rejected;
#   4. every table has the same rows in both databases, the revoked truck is
#      still revoked and the broker role can read its tables;
#   5. fleetauthd started on the restored database returns 200 on /readyz,
#      logs the user in and reports the revoked truck as revoked;
#   6. a Mosquitto broker with the plugin on the restored database lets the
#      active truck connect and rejects the revoked one.
# The cluster, fleetauthd and the broker started here are stopped by pid.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
fa_load_env "$@"

readonly SRC_DIR=$FLEETAUTH_SOURCE_DIR
readonly PG_BINDIR=${FLEETAUTH_PG_BINDIR:-/usr/lib/postgresql/15/bin}
readonly START_TIMEOUT=30

for tool in curl jq openssl psql pg_dump pg_restore mosquitto_pub \
	"$PG_BINDIR/initdb" "$PG_BINDIR/pg_ctl"; do
	command -v "$tool" >/dev/null || fa_skip "$tool is not installed"
done

RUN=$(openssl rand -hex 4)
CARRIER=bk-$RUN
DISPATCHER=bk-disp-$RUN
DRIVER_1=bk-drv1-$RUN
DRIVER_2=bk-drv2-$RUN
DRIVER_PASSWORD=$(openssl rand -hex 16)
LOAD_1=bk-load1-$RUN
LOAD_2=bk-load2-$RUN

# ---------------------------------------------------------------------------
# Helpers

as_postgres()
{
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# Runs SQL on the restored database as the given role; extra arguments go
# to psql (for example -d postgres).
restored_sql()
{
	local user=$1 password=$2 sql=$3
	shift 3
	PGHOST=127.0.0.1 PGPORT=$RESTORE_PORT PGDATABASE=fleetauth \
		PGUSER=$user PGPASSWORD=$password fa_sql "$sql" "$@"
}

# SQL (for psql's stdin) that prints "table rows md5" for every table in
# schema public, the md5 taken over all rows in a stable order.
readonly TABLE_DIGESTS_SQL="SELECT format(
	'SELECT %L || '' '' || count(*) || '' '' || coalesce(md5(string_agg(
	t::text, E''\\n'' ORDER BY t::text)), ''-'') FROM %I t',
	tablename, tablename)
FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename
\\gexec"

# SQL that prints every index, constraint and trigger definition in schema
# public, one a line.
readonly SCHEMA_OBJECTS_SQL="SELECT indexdef FROM pg_indexes
	WHERE schemaname = 'public'
UNION ALL
SELECT conrelid::regclass || ' ' || conname || ' ' ||
	pg_get_constraintdef(oid) FROM pg_constraint
	WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT pg_get_triggerdef(oid) FROM pg_trigger
	WHERE NOT tgisinternal
ORDER BY 1"

fa_sql_stdin()
{
	psql -X -q -A -t -v ON_ERROR_STOP=1
}

restored_sql_stdin()
{
	PGHOST=127.0.0.1 PGPORT=$RESTORE_PORT PGDATABASE=fleetauth \
		PGUSER=fleetauth_service PGPASSWORD=$SERVICE_PASSWORD \
		fa_sql_stdin
}

http_status()
{
	curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true
}

# ---------------------------------------------------------------------------
# 1. Fixtures

make_fixtures()
{
	fa_api POST /v1/carriers "$(jq -cn --arg id "$CARRIER" \
		'{id: $id, name: "Backup test carrier"}')"
	fa_expect_status 201 "POST /v1/carriers $CARRIER"
	fa_api POST /v1/users "$(jq -cn --arg u "$DRIVER_1" \
		--arg p "$DRIVER_PASSWORD" --arg c "$CARRIER" \
		'{username: $u, password: $p, role: "driver", carrier: $c}')"
	fa_expect_status 201 "POST /v1/users $DRIVER_1"

	# Users without a password login, and loads, straight into the
	# tables (principals first: users and devices share its id space).
	fa_sql "BEGIN;
		INSERT INTO principals (id, kind) VALUES
			('$DISPATCHER', 'user'), ('$DRIVER_2', 'user');
		INSERT INTO users (id, carrier_id, role, password_hash) VALUES
			('$DISPATCHER', '$CARRIER', 'dispatcher', '!'),
			('$DRIVER_2', '$CARRIER', 'driver', '!');
		INSERT INTO loads (carrier_id, id, reference, created_by) VALUES
			('$CARRIER', '$LOAD_1', 'BOL-1', 'test'),
			('$CARRIER', '$LOAD_2', 'BOL-2', 'test');
		INSERT INTO load_assignments
			(carrier_id, load_id, driver_id, assigned_by) VALUES
			('$CARRIER', '$LOAD_1', '$DRIVER_1', 'test'),
			('$CARRIER', '$LOAD_1', '$DRIVER_2', 'test'),
			('$CARRIER', '$LOAD_2', '$DRIVER_1', 'test');
		COMMIT"

	enroll_truck TRUCK_ACTIVE
	enroll_truck TRUCK_REVOKED
	fa_api POST "/v1/devices/$TRUCK_REVOKED/revoke" '{"reason": "stolen"}'
	fa_expect_status 200 "POST /v1/devices/$TRUCK_REVOKED/revoke"
	fa_expect_eq "$(fa_sql "SELECT status FROM devices
		WHERE id = '$TRUCK_REVOKED'")" revoked \
		"status of $TRUCK_REVOKED before the backup"
}

# Provisions and enrolls a truck; stores its id in the variable named $1
# and its key and certificate in FA_TMP/<id>.key and .pem.
enroll_truck()
{
	local variable=$1 id code
	fa_api POST /v1/devices "$(jq -cn --arg c "$CARRIER" \
		'{carrier: $c, kind: "truck", label: "backup test"}')"
	fa_expect_status 201 "POST /v1/devices for $CARRIER"
	id=$(jq -r .device_id <<<"$FA_BODY")
	code=$(jq -r .enrollment_code <<<"$FA_BODY")
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$FA_TMP/$id.key" 2>/dev/null ||
		fa_fail "openssl could not generate a key for $id"
	openssl req -new -key "$FA_TMP/$id.key" -subj "/CN=$id" \
		-out "$FA_TMP/$id.csr" 2>/dev/null ||
		fa_fail "openssl could not create a CSR for $id"
	fa_api_as "" POST /v1/devices/enroll "$(jq -cn --arg code "$code" \
		--rawfile csr "$FA_TMP/$id.csr" \
		'{enrollment_code: $code, csr: $csr}')"
	fa_expect_status 201 "enrollment of $id"
	jq -r .certificate <<<"$FA_BODY" >"$FA_TMP/$id.pem"
	printf -v "$variable" '%s' "$id"
}

# ---------------------------------------------------------------------------
# 3. A fresh cluster

start_cluster()
{
	CLUSTER_DIR=$(mktemp -d /tmp/fa-restore-cluster.XXXXXX)
	fa_on_exit "rm -rf -- '$CLUSTER_DIR'"
	chmod 0755 "$CLUSTER_DIR"
	SUPER_PASSWORD=$(openssl rand -hex 16)
	SERVICE_PASSWORD=$(openssl rand -hex 16)
	BROKER_PASSWORD=$(openssl rand -hex 16)
	(umask 077 && printf '%s\n' "$SUPER_PASSWORD" >"$CLUSTER_DIR/pw")
	if [[ $(id -u) -eq 0 ]]; then
		chown postgres:postgres "$CLUSTER_DIR" "$CLUSTER_DIR/pw"
	fi
	as_postgres "$PG_BINDIR/initdb" -D "$CLUSTER_DIR/data" -U postgres \
		--pwfile="$CLUSTER_DIR/pw" --auth=scram-sha-256 -E UTF8 \
		--locale=C.UTF-8 -N >"$CLUSTER_DIR/initdb.log" 2>&1 ||
		fa_fail "initdb failed: $(tail -n 5 "$CLUSTER_DIR/initdb.log")"
	rm -f "$CLUSTER_DIR/pw"
	RESTORE_PORT=$(fa_free_port)
	fa_on_exit stop_cluster
	as_postgres "$PG_BINDIR/pg_ctl" start -D "$CLUSTER_DIR/data" -w \
		-t "$START_TIMEOUT" -l "$CLUSTER_DIR/postgres.log" \
		-o "-c listen_addresses=127.0.0.1 -c port=$RESTORE_PORT \
		-c unix_socket_directories=$CLUSTER_DIR -c fsync=off" \
		>/dev/null 2>&1 ||
		fa_fail "PostgreSQL did not start on port $RESTORE_PORT:" \
			"$(tail -n 5 "$CLUSTER_DIR/postgres.log")"
	CLUSTER_PID=$(head -n 1 "$CLUSTER_DIR/data/postmaster.pid")
	CLUSTER_START=$(proc_start_time "$CLUSTER_PID")
	fa_log "fresh cluster: pid $CLUSTER_PID, port $RESTORE_PORT"

	# The same roles and database that tools/stack creates.
	restored_sql postgres "$SUPER_PASSWORD" "
		CREATE ROLE fleetauth_service LOGIN
			PASSWORD '$SERVICE_PASSWORD';
		CREATE ROLE fleetauth_broker LOGIN PASSWORD '$BROKER_PASSWORD';
		ALTER ROLE fleetauth_broker
			SET default_transaction_read_only = on;" -d postgres
	restored_sql postgres "$SUPER_PASSWORD" "
		CREATE DATABASE fleetauth OWNER fleetauth_service" -d postgres
	restored_sql postgres "$SUPER_PASSWORD" "
		REVOKE ALL ON DATABASE fleetauth FROM PUBLIC;
		GRANT CONNECT ON DATABASE fleetauth
			TO fleetauth_service, fleetauth_broker" -d postgres
	(
		umask 077
		printf 'export PGHOST=127.0.0.1\nexport PGPORT=%s\n' \
			"$RESTORE_PORT"
		printf 'export PGDATABASE=fleetauth\n'
		printf 'export PGUSER=fleetauth_service\n'
		printf 'export PGPASSWORD=%s\n' "$SERVICE_PASSWORD"
	) >"$FA_TMP/restore.env"
}

# Stops the cluster this test started: pg_ctl first, then the recorded
# postmaster pid if pg_ctl failed.
stop_cluster()
{
	if [[ -f $CLUSTER_DIR/data/postmaster.pid ]]; then
		as_postgres "$PG_BINDIR/pg_ctl" stop -D "$CLUSTER_DIR/data" \
			-m fast -w -t 20 >/dev/null 2>&1 || true
	fi
	if [[ -n ${CLUSTER_PID-} ]]; then
		stop_recorded_pid "$CLUSTER_PID" "$CLUSTER_START"
	fi
}

# ---------------------------------------------------------------------------
# 4. Compare the databases

compare_tables()
{
	local source restored
	source=$(fa_sql_stdin <<<"$TABLE_DIGESTS_SQL")
	[[ -n $source ]] || fa_fail "the source database has no tables"
	restored=$(restored_sql_stdin <<<"$TABLE_DIGESTS_SQL")
	[[ $restored == "$source" ]] ||
		fa_fail "tables differ after the restore (table, rows, md5;" \
			"< source, > restored):" \
			"$(diff <(echo "$source") <(echo "$restored"))"
	fa_log "all $(wc -l <<<"$source") tables have the same rows"
	source=$(fa_sql_stdin <<<"$SCHEMA_OBJECTS_SQL")
	restored=$(restored_sql_stdin <<<"$SCHEMA_OBJECTS_SQL")
	[[ $restored == "$source" ]] ||
		fa_fail "indexes, constraints or triggers differ after the" \
			"restore (< source, > restored):" \
			"$(diff <(echo "$source") <(echo "$restored"))"
	fa_log "all $(wc -l <<<"$source") indexes, constraints and triggers" \
		"are the same"
	fa_expect_eq "$(restored_sql fleetauth_service "$SERVICE_PASSWORD" \
		"SELECT last_value FROM change_log_id_seq")" \
		"$(fa_sql "SELECT last_value FROM change_log_id_seq")" \
		"change_log_id_seq after the restore"
}

check_fixtures()
{
	local sql=(restored_sql fleetauth_service "$SERVICE_PASSWORD")
	fa_expect_eq "$("${sql[@]}" "SELECT id FROM users
		WHERE carrier_id = '$CARRIER' ORDER BY id" | tr '\n' ' ')" \
		"$DISPATCHER $DRIVER_1 $DRIVER_2 " "users of $CARRIER"
	fa_expect_eq "$("${sql[@]}" "SELECT id || '=' || status FROM devices
		WHERE carrier_id = '$CARRIER' ORDER BY id" | sort | tr '\n' ' ')" \
		"$(printf '%s\n' "$TRUCK_ACTIVE=active" \
			"$TRUCK_REVOKED=revoked" | sort | tr '\n' ' ')" \
		"devices of $CARRIER"
	fa_expect_eq "$("${sql[@]}" "SELECT load_id || '/' || driver_id
		FROM load_assignments WHERE carrier_id = '$CARRIER'
		ORDER BY 1" | tr '\n' ' ')" \
		"$LOAD_1/$DRIVER_1 $LOAD_1/$DRIVER_2 $LOAD_2/$DRIVER_1 " \
		"load assignments of $CARRIER"
	fa_expect_eq "$("${sql[@]}" "SELECT revoked_at IS NOT NULL
		FROM devices WHERE id = '$TRUCK_REVOKED'")" t \
		"revoked_at of $TRUCK_REVOKED"
	fa_expect_eq "$("${sql[@]}" "SELECT string_agg(status, ',')
		FROM device_certificates WHERE device_id = '$TRUCK_REVOKED'")" \
		revoked "certificate status of $TRUCK_REVOKED"
	# The grants to the broker role came back with the tables.
	fa_expect_eq "$(restored_sql fleetauth_broker "$BROKER_PASSWORD" \
		"SELECT status FROM devices WHERE id = '$TRUCK_REVOKED'")" \
		revoked "status of $TRUCK_REVOKED read by fleetauth_broker"
}

# ---------------------------------------------------------------------------
# 5. fleetauthd on the restored database

start_restored_fleetauthd()
{
	local port pid url deadline database_url
	port=$(fa_free_port)
	url=http://127.0.0.1:$port
	database_url="host=127.0.0.1 port=$RESTORE_PORT dbname=fleetauth"
	database_url+=" user=fleetauth_service password=$SERVICE_PASSWORD"
	FLEETAUTHD_DATABASE_URL=$database_url FLEETAUTHD_LISTEN_PORT=$port \
		"$FLEETAUTHD" -c "$FLEETAUTHD_CONFIG" serve \
		>"$FA_TMP/fleetauthd.log" 2>&1 </dev/null &
	pid=$!
	fa_on_exit "stop_recorded_pid $pid $(proc_start_time $pid)"
	deadline=$((SECONDS + START_TIMEOUT))
	until [[ $(http_status "$url/readyz") == 200 ]]; do
		kill -0 "$pid" 2>/dev/null ||
			fa_fail "fleetauthd on the restored database exited:" \
				"$(tail -n 5 "$FA_TMP/fleetauthd.log")"
		((SECONDS < deadline)) ||
			fa_fail "fleetauthd on the restored database did not" \
				"answer /readyz with 200 in ${START_TIMEOUT}s"
		sleep 0.2
	done
	RESTORED_URL=$url
}

check_restored_fleetauthd()
{
	local saved_url=$FLEETAUTH_URL
	FLEETAUTH_URL=$RESTORED_URL
	# The admin API key, the password hash and the sealed signing key were
	# all restored: the key-encryption key of the stack still opens them.
	fa_api GET "/v1/devices/$TRUCK_REVOKED"
	fa_expect_status 200 "GET /v1/devices/$TRUCK_REVOKED on the restore"
	fa_expect_eq "$(jq -r .status <<<"$FA_BODY")" revoked \
		"status of $TRUCK_REVOKED from the restored fleetauthd"
	fa_api_as "" POST /v1/auth/login "$(jq -cn --arg u "$DRIVER_1" \
		--arg p "$DRIVER_PASSWORD" '{username: $u, password: $p}')"
	fa_expect_status 200 "login of $DRIVER_1 on the restored fleetauthd"
	[[ $(jq -r '.access_token // empty' <<<"$FA_BODY") == *.*.* ]] ||
		fa_fail "login on the restored fleetauthd returned no access" \
			"token: $FA_BODY"
	FLEETAUTH_URL=$saved_url
}

# ---------------------------------------------------------------------------
# 6. A broker on the restored database

start_restored_broker()
{
	local dir port tls_port pid deadline conf
	dir=$CLUSTER_DIR/broker
	mkdir -m 0700 "$dir"
	cp "$FLEETAUTH_STACK_DIR/pki/broker.pem" \
		"$FLEETAUTH_STACK_DIR/pki/broker.key" "$FLEETAUTH_CA_FILE" "$dir/"
	port=$(fa_free_port)
	tls_port=$(fa_free_port)
	while [[ $tls_port == "$port" ]]; do
		tls_port=$(fa_free_port)
	done
	(umask 077 && printf '127.0.0.1:%s:fleetauth:fleetauth_broker:%s\n' \
		"$RESTORE_PORT" "$BROKER_PASSWORD" >"$dir/pgpass")
	conf=$dir/mosquitto.conf
	cat >"$conf" <<EOF
per_listener_settings false
allow_anonymous false
persistence false
log_dest stderr
log_type all
plugin $FLEETAUTH_PLUGIN
plugin_opt_db_conninfo host=127.0.0.1 port=$RESTORE_PORT dbname=fleetauth user=fleetauth_broker passfile=$dir/pgpass
plugin_opt_issuer $FLEETAUTH_ISSUER
plugin_opt_audience $FLEETAUTH_AUDIENCE
listener $port 127.0.0.1
listener $tls_port 127.0.0.1
cafile $dir/$(basename "$FLEETAUTH_CA_FILE")
certfile $dir/broker.pem
keyfile $dir/broker.key
require_certificate true
EOF
	if [[ $(id -u) -eq 0 ]]; then
		chown -R mosquitto:mosquitto "$dir"
	fi
	# PGPASSWORD from the stack's env file would take precedence over the
	# passfile in the connection string.
	env -u PGPASSWORD -u PGUSER -u PGDATABASE -u PGHOST -u PGPORT \
		/usr/sbin/mosquitto -c "$conf" >"$FA_TMP/broker.log" 2>&1 \
		</dev/null &
	pid=$!
	fa_on_exit "stop_recorded_pid $pid $(proc_start_time $pid)"
	deadline=$((SECONDS + START_TIMEOUT))
	until grep -q 'snapshot loaded' "$FA_TMP/broker.log" &&
		[[ -n $(ss -Hltn "sport = :$tls_port") ]]; do
		kill -0 "$pid" 2>/dev/null ||
			fa_fail "Mosquitto on the restored database exited:" \
				"$(tail -n 5 "$FA_TMP/broker.log")"
		((SECONDS < deadline)) ||
			fa_fail "Mosquitto on the restored database did not load" \
				"its snapshot in ${START_TIMEOUT}s"
		sleep 0.2
	done
	RESTORED_TLS_PORT=$tls_port
}

# Publishes once as device id over mutual TLS; sets FA_MQTT_RC.
publish_as_device()
{
	local id=$1
	fa_mqtt_run mosquitto_pub -h 127.0.0.1 -p "$RESTORED_TLS_PORT" \
		--cafile "$FLEETAUTH_BROKER_CA_FILE" --cert "$FA_TMP/$id.pem" \
		--key "$FA_TMP/$id.key" -V mqttv5 -q 1 -u "$id" -i "$id" \
		-t "fleet/$CARRIER/devices/$id/telemetry/gps" -m '{"lat": 1}'
}

check_restored_broker()
{
	publish_as_device "$TRUCK_ACTIVE"
	fa_expect_eq "$FA_MQTT_RC" 0 \
		"publish by active $TRUCK_ACTIVE on the restored broker ($FA_MQTT_ERR)"
	publish_as_device "$TRUCK_REVOKED"
	fa_expect_ne "$FA_MQTT_RC" 0 \
		"publish by revoked $TRUCK_REVOKED on the restored broker"
}

# ---------------------------------------------------------------------------

main()
{
	local dump=$FA_TMP/fleetauth.dump output rc=0
	make_fixtures
	fa_log "fixtures: carrier $CARRIER, trucks $TRUCK_ACTIVE (active)" \
		"and $TRUCK_REVOKED (revoked)"

	"$SRC_DIR/tools/backup" "$FLEETAUTH_ENV" "$dump" ||
		fa_fail "tools/backup failed"
	fa_expect_eq "$(stat -c %a "$dump")" 600 "mode of the dump"
	[[ -s $dump.sha256 ]] || fa_fail "tools/backup wrote no $dump.sha256"

	start_cluster
	"$SRC_DIR/tools/restore" "$FA_TMP/restore.env" "$dump" ||
		fa_fail "tools/restore failed"
	output=$("$SRC_DIR/tools/restore" "$FA_TMP/restore.env" "$dump" \
		2>&1) || rc=$?
	fa_expect_ne "$rc" 0 "exit code of a second restore into one database"
	fa_expect_contains "$output" "already contains" \
		"message of a second restore"

	compare_tables
	check_fixtures
	start_restored_fleetauthd
	check_restored_fleetauthd
	start_restored_broker
	check_restored_broker
	fa_log "restore verified through SQL, fleetauthd and Mosquitto"
}

main
