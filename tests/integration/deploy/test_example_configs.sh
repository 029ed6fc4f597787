#!/usr/bin/env bash
# The shipped configurations work with the real programs:
#   1. fleetauthd check-config accepts deploy/config/fleetauthd.conf.example
#      and the fleetauthd.conf of the Kubernetes ConfigMap (with the stack's
#      key-encryption key, and without test mode);
#   2. Mosquitto 2.0 starts with deploy/config/mosquitto-fleetauth.conf.example
#      and with the broker configuration of the Kubernetes ConfigMap. Each
#      runs as the mosquitto user, with paths, ports and database rewritten
#      to this stack's. On each broker an anonymous client is rejected, a
#      driver with an access token connects on the plain and on the TLS
#      listener, and a client without a certificate cannot connect to the
#      device listener.
# Every Mosquitto started here is stopped by its pid.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
fa_load_env "$@"

readonly SRC_DIR=$FLEETAUTH_SOURCE_DIR
readonly PYTHON=/usr/bin/python3
readonly START_TIMEOUT=20

for tool in openssl jq psql mosquitto_pub /usr/sbin/mosquitto; do
	command -v "$tool" >/dev/null || fa_skip "$tool is not installed"
done
"$PYTHON" -c 'import yaml' 2>/dev/null ||
	fa_fail "PyYAML is missing for $PYTHON: install the Debian package" \
		"python3-yaml (tools/install-deps installs it)"

RUN=$(openssl rand -hex 4)
CARRIER=cfg-$RUN
DRIVER=cfg-drv-$RUN

# Prints data[key] of the ConfigMap named name in a manifest file.
configmap_value()
{
	local file=$1 name=$2 key=$3
	"$PYTHON" - "$file" "$name" "$key" <<'EOF'
import sys, yaml
path, name, key = sys.argv[1:4]
for doc in yaml.safe_load_all(open(path)):
    if doc and doc.get("kind") == "ConfigMap" and \
            doc["metadata"]["name"] == name:
        sys.stdout.write(doc["data"][key])
        sys.exit(0)
sys.exit(f"no ConfigMap {name} with key {key} in {path}")
EOF
}

# Replaces every occurrence of old with new in file; fails when old does
# not occur, so that a changed example cannot slip past the rewrite.
replace_all()
{
	local file=$1 old=$2 new=$3
	"$PYTHON" - "$file" "$old" "$new" <<'EOF' ||
import sys
path, old, new = sys.argv[1:4]
text = open(path).read()
if old not in text:
    sys.exit(f"{old!r} not found")
open(path, "w").write(text.replace(old, new))
EOF
		fa_fail "cannot rewrite '$old' in $file: the configuration" \
			"changed; update this test"
}

# ---------------------------------------------------------------------------
# fleetauthd

check_fleetauthd_config()
{
	local file=$1 what=$2 output
	output=$(env -u FLEETAUTH_TEST_MODE \
		FLEETAUTHD_KEK_FILE="$FLEETAUTH_STACK_DIR/pki/kek.hex" \
		"$FLEETAUTHD" -c "$file" check-config 2>&1) ||
		fa_fail "fleetauthd check-config rejects $what: $output"
	fa_log "fleetauthd check-config accepts $what"
}

# ---------------------------------------------------------------------------
# Mosquitto

# Starts Mosquitto with the configuration file conf (already rewritten) in
# dir; sets BROKER_PID.
start_broker()
{
	local dir=$1 conf=$2 log=$1/broker.log pid deadline
	local run=()
	if [[ $(id -u) -eq 0 ]]; then
		chown -R mosquitto:mosquitto "$dir"
		run=(runuser -u mosquitto --)
	fi
	# PGPASSWORD from the stack's env file would take precedence over the
	# passfile named in plugin_opt_db_conninfo.
	"${run[@]}" env -u PGPASSWORD -u PGUSER -u PGDATABASE -u PGHOST \
		-u PGPORT /usr/sbin/mosquitto -c "$conf" >"$log" 2>&1 \
		</dev/null &
	pid=$!
	fa_on_exit "stop_recorded_pid $pid $(proc_start_time $pid)"
	deadline=$((SECONDS + START_TIMEOUT))
	until grep -q 'snapshot loaded' "$log" &&
		[[ -n $(ss -Hltn "sport = :$PORT_APPS") ]]; do
		kill -0 "$pid" 2>/dev/null ||
			fa_fail "Mosquitto exited with $conf: $(tail -n 5 "$log")"
		((SECONDS < deadline)) ||
			fa_fail "Mosquitto did not start with $conf in" \
				"${START_TIMEOUT}s: $(tail -n 5 "$log")"
		sleep 0.2
	done
}

# Prepares dir with the stack's TLS files and a password file for the
# broker role, and picks three free ports.
prepare_broker_dir()
{
	local dir=$1
	mkdir -m 0700 "$dir" "$dir/tls" "$dir/cred" "$dir/state"
	cp "$FLEETAUTH_STACK_DIR/pki/broker.pem" "$dir/tls/broker.pem"
	cp "$FLEETAUTH_CA_FILE" "$dir/tls/fleet-ca.pem"
	cp "$FLEETAUTH_STACK_DIR/pki/broker.key" "$dir/cred/broker.key"
	(umask 077 && printf '127.0.0.1:%s:%s:%s:%s\n' "$PGPORT" \
		"$PGDATABASE" "$FLEETAUTH_BROKER_PGUSER" \
		"$FLEETAUTH_BROKER_PGPASSWORD" >"$dir/cred/pgpass")
	PORT_PLAIN=$(fa_free_port)
	PORT_DEVICES=$(fa_free_port)
	PORT_APPS=$(fa_free_port)
	if [[ $PORT_PLAIN == "$PORT_DEVICES" || $PORT_PLAIN == "$PORT_APPS" ||
		$PORT_DEVICES == "$PORT_APPS" ]]; then
		fa_fail "fa_free_port returned one port twice; run the test again"
	fi
}

# The stack's PostgreSQL has no TLS, so verify-full becomes disable.
rewrite_database()
{
	local conf=$1 dir=$2 credentials=$3
	replace_all "$conf" "host=db.example.internal port=5432" \
		"host=127.0.0.1 port=$PGPORT"
	replace_all "$conf" "sslmode=verify-full" "sslmode=disable"
	replace_all "$conf" "$credentials" "$dir/cred/"
	replace_all "$conf" "/usr/lib/fleetauth/fleetauth_plugin.so" \
		"$FLEETAUTH_PLUGIN"
	replace_all "$conf" "/etc/mosquitto/tls/" "$dir/tls/"
	replace_all "$conf" "/var/lib/mosquitto-fleetauth/" "$dir/state/"
}

# Connects a client to each listener of the running broker and checks the
# outcome; what names the configuration in messages.
check_broker()
{
	local what=$1 token topic
	token=$(fa_mint_token "$(fa_claims "$DRIVER" driver "$CARRIER")")
	topic=fleet/$CARRIER/drivers/$DRIVER/status

	fa_mqtt_run mosquitto_pub -h 127.0.0.1 -p "$PORT_PLAIN" -V mqttv5 \
		-i "anonymous-$RUN" -t "$topic" -m x
	fa_expect_ne "$FA_MQTT_RC" 0 "anonymous publish with $what"

	fa_mqtt_run mosquitto_pub -h 127.0.0.1 -p "$PORT_PLAIN" -V mqttv5 \
		-u "$DRIVER" -P "$token" -i "$DRIVER" -t "$topic" -m plain
	fa_expect_eq "$FA_MQTT_RC" 0 \
		"token publish on the plain listener with $what ($FA_MQTT_ERR)"

	fa_mqtt_run mosquitto_pub -h 127.0.0.1 -p "$PORT_APPS" -V mqttv5 \
		--cafile "$FLEETAUTH_BROKER_CA_FILE" -u "$DRIVER" -P "$token" \
		-i "$DRIVER" -t "$topic" -m tls
	fa_expect_eq "$FA_MQTT_RC" 0 \
		"token publish on the app TLS listener with $what ($FA_MQTT_ERR)"

	fa_mqtt_run mosquitto_pub -h 127.0.0.1 -p "$PORT_DEVICES" -V mqttv5 \
		--cafile "$FLEETAUTH_BROKER_CA_FILE" -u "$DRIVER" -P "$token" \
		-i "$DRIVER" -t "$topic" -m no-cert
	fa_expect_ne "$FA_MQTT_RC" 0 \
		"publish without a client certificate on the device listener with $what"
	fa_log "Mosquitto with $what: anonymous rejected, token accepted," \
		"device listener requires a certificate"
}

check_example_broker()
{
	local dir=$FA_TMP/example conf
	prepare_broker_dir "$dir"
	conf=$dir/mosquitto.conf
	cp "$SRC_DIR/deploy/config/mosquitto-fleetauth.conf.example" "$conf"
	rewrite_database "$conf" "$dir" \
		/run/credentials/mosquitto-fleetauth.service/
	replace_all "$conf" "listener 1883 127.0.0.1" \
		"listener $PORT_PLAIN 127.0.0.1"
	replace_all "$conf" $'listener 8883\n' \
		$"listener $PORT_DEVICES 127.0.0.1"$'\n'
	replace_all "$conf" $'listener 8884\n' \
		$"listener $PORT_APPS 127.0.0.1"$'\n'
	start_broker "$dir" "$conf"
	check_broker deploy/config/mosquitto-fleetauth.conf.example
}

check_kubernetes_broker()
{
	local dir=$FA_TMP/kubernetes conf
	local manifest=$SRC_DIR/deploy/kubernetes/mosquitto.yaml
	prepare_broker_dir "$dir"
	# The TLS Secret carries the key next to the certificate.
	cp "$FLEETAUTH_STACK_DIR/pki/broker.key" "$dir/tls/broker.key"
	conf=$dir/mosquitto.conf
	configmap_value "$manifest" mosquitto-fleetauth-config \
		fleetauth.conf >"$conf" ||
		fa_fail "cannot read the broker configuration from $manifest"
	replace_all "$conf" \
		host=fleetauth-postgres.fleetauth.svc.cluster.local \
		host=db.example.internal
	rewrite_database "$conf" "$dir" /run/mosquitto/secrets/
	replace_all "$conf" $'listener 1883\n' \
		$"listener $PORT_PLAIN 127.0.0.1"$'\n'
	replace_all "$conf" $'listener 8883\n' \
		$"listener $PORT_DEVICES 127.0.0.1"$'\n'
	replace_all "$conf" $'listener 8884\n' \
		$"listener $PORT_APPS 127.0.0.1"$'\n'
	start_broker "$dir" "$conf"
	check_broker "the Kubernetes ConfigMap mosquitto-fleetauth-config"
}

main()
{
	local manifest=$SRC_DIR/deploy/kubernetes/fleetauthd.yaml
	check_fleetauthd_config \
		"$SRC_DIR/deploy/config/fleetauthd.conf.example" \
		deploy/config/fleetauthd.conf.example
	configmap_value "$manifest" fleetauthd-config fleetauthd.conf \
		>"$FA_TMP/fleetauthd.conf" ||
		fa_fail "cannot read fleetauthd.conf from $manifest"
	check_fleetauthd_config "$FA_TMP/fleetauthd.conf" \
		"the Kubernetes ConfigMap fleetauthd-config"

	fa_sql "BEGIN;
		INSERT INTO carriers (id, name) VALUES ('$CARRIER', 'Config test');
		INSERT INTO principals (id, kind) VALUES ('$DRIVER', 'user');
		INSERT INTO users (id, carrier_id, role, password_hash)
		VALUES ('$DRIVER', '$CARRIER', 'driver', '!');
		COMMIT"
	# FA_TMP is private to root; the broker runs as mosquitto.
	if [[ $(id -u) -eq 0 ]]; then
		chmod 0711 "$FA_TMP"
	fi
	check_example_broker
	check_kubernetes_broker
}

main
