#!/usr/bin/env bash
# Measures the plugin's snapshot load through a real broker and database.
# It inserts ASSIGNMENTS load assignments (default 1,000,000, one per load,
# over 10,000 drivers of one carrier) under a random prefix. Then it starts
# Mosquitto with the plugin on a free 127.0.0.1 port and prints the load
# time from the plugin's log line and the broker's resident memory.
#
#   bench_snapshot.sh ENV_FILE [ASSIGNMENTS]
#
# ENV_FILE is the env file of tools/stack (or of
# tests/integration/plugin/local-env.sh). Use a throwaway stack: the rows
# stay in its database.
set -euo pipefail

[[ $# -ge 1 && -r $1 ]] || {
	printf 'usage: bench_snapshot.sh ENV_FILE [ASSIGNMENTS]\n' >&2
	exit 2
}
set -a
# shellcheck disable=SC1090
. "$1"
set +a
count=${2:-1000000}
prefix=bench$(openssl rand -hex 3)
work=$(mktemp -d /tmp/fleetauth-bench.XXXXXX)
chmod 0755 "$work"

printf 'inserting %d assignments under prefix %s\n' "$count" "$prefix"
psql -X -q -v ON_ERROR_STOP=1 <<EOF
INSERT INTO carriers (id, name) VALUES ('$prefix', 'bench');
INSERT INTO principals (id, kind)
	SELECT '$prefix-d' || i, 'user' FROM generate_series(1, 10000) i;
INSERT INTO users (id, carrier_id, role, password_hash)
	SELECT '$prefix-d' || i, '$prefix', 'driver', 'x'
	FROM generate_series(1, 10000) i;
INSERT INTO loads (carrier_id, id, created_by)
	SELECT '$prefix', 'l' || i, 'bench' FROM generate_series(1, $count) i;
INSERT INTO load_assignments (carrier_id, load_id, driver_id, assigned_by)
	SELECT '$prefix', 'l' || i, '$prefix-d' || (i % 10000 + 1), 'bench'
	FROM generate_series(1, $count) i;
EOF

port=$((RANDOM % 12000 + 20000))
cat >"$work/bench.conf" <<EOF
user root
allow_anonymous false
persistence false
log_dest file $work/bench.log
log_type all
plugin $FLEETAUTH_PLUGIN
plugin_opt_db_conninfo host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=${FLEETAUTH_BROKER_PGUSER:-fleetauth_broker} password=$FLEETAUTH_BROKER_PGPASSWORD
listener $port 127.0.0.1
EOF
mosquitto -c "$work/bench.conf" >"$work/bench.out" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
	grep -q 'snapshot loaded' "$work/bench.log" 2>/dev/null && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
sleep 1
grep -o 'snapshot loaded.*' "$work/bench.log" || cat "$work/bench.out"
grep -E '^(VmHWM|VmRSS)' "/proc/$pid/status" || true
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
rm -rf "$work"
