#!/usr/bin/env bash
# CONNECT rate of device clients over TLS with client certificates: a
# broker with the fleetauth plugin against the same TLS listener
# (require_certificate true, same certificates) with no plugin and
# anonymous access. Both are fresh Mosquitto processes on free 127.0.0.1
# ports, measured interleaved.
#
#   BENCH_ENV=DIR/env tools/bench/tls.sh [DEVICES [ROUNDS]]
#
# DEVICES (default 300) devices are inserted with one active certificate
# each, issued by the stack's fleet CA. The certificates share one P-256
# key, which the plugin does not look at (it maps the certificate's
# fingerprint). Prints a results block with medians over the rounds.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$BENCH_DIR/common.sh"

devices=${1:-300}
rounds=${2:-5}
concurrency=${BENCH_CONCURRENCY:-32}

bench_init tls
bench_log "work folder $BENCH_WORK, tag $BENCH_TAG"
certs=$BENCH_WORK/certs
mkdir -p "$certs"

# Issues the certificates and writes one CSV row per device for COPY.
make_certs()
{
	local i name serial fingerprint
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$BENCH_WORK/device.key" 2>/dev/null
	openssl req -new -key "$BENCH_WORK/device.key" -subj "/CN=bench" \
		-out "$BENCH_WORK/device.csr" 2>/dev/null
	for i in $(seq 1 "$devices"); do
		name=${BENCH_TAG}t$i
		serial=$(openssl rand -hex 16)
		openssl x509 -req -in "$BENCH_WORK/device.csr" \
			-CA "$FLEETAUTH_CA_FILE" \
			-CAkey "$FLEETAUTH_CA_KEY_FILE" \
			-set_serial "0x$serial" -days 2 -sha256 \
			-extfile "$FLEETAUTH_OPENSSL_CONFIG" \
			-extensions client_ext -out "$certs/$name.pem" \
			2>/dev/null || bench_die "openssl could not issue $name"
		cp "$BENCH_WORK/device.key" "$certs/$name.key"
		fingerprint=$(openssl x509 -in "$certs/$name.pem" -noout \
			-fingerprint -sha256 | sed 's/.*=//; s/://g' |
			tr 'A-F' 'a-f')
		printf '%s,%s,%s\n' "$serial" "$name" "$fingerprint"
	done >"$BENCH_WORK/certs.csv"
}

insert_devices()
{
	psql -X -q -v ON_ERROR_STOP=1 <<EOF
INSERT INTO carriers (id, name) VALUES ('$BENCH_TAG', 'benchmark');
INSERT INTO principals (id, kind)
	SELECT '${BENCH_TAG}t' || i, 'device'
	FROM generate_series(1, $devices) i;
INSERT INTO devices (id, carrier_id, device_type, status, created_by)
	SELECT '${BENCH_TAG}t' || i, '$BENCH_TAG', 'truck', 'active', 'bench'
	FROM generate_series(1, $devices) i;
CREATE TEMP TABLE bench_certs (serial text, device text, fingerprint text);
\\copy bench_certs FROM '$BENCH_WORK/certs.csv' WITH (FORMAT csv)
INSERT INTO device_certificates (serial, device_id, fingerprint_sha256,
		not_before, not_after, pem)
	SELECT serial, device, fingerprint, now() - interval '1 hour',
		now() + interval '1 day', 'benchmark'
	FROM bench_certs;
EOF
}

make_certs
insert_devices
cp "$FLEETAUTH_STACK_DIR/pki/broker.pem" "$FLEETAUTH_STACK_DIR/pki/broker.key" \
	"$FLEETAUTH_CA_FILE" "$BENCH_WORK/"

declare -A port pid
for name in tls_plain tls_plugin; do
	port[$name]=$(bench_free_port)
	{
		cat <<EOF
per_listener_settings false
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
connection_messages false
EOF
		if [[ $name == tls_plugin ]]; then
			printf 'allow_anonymous false\n'
			bench_plugin_lines
		else
			printf 'allow_anonymous true\n'
		fi
		cat <<EOF
listener ${port[$name]} 127.0.0.1
cafile $BENCH_WORK/fleet-ca.pem
certfile $BENCH_WORK/broker.pem
keyfile $BENCH_WORK/broker.key
require_certificate true
EOF
	} >"$BENCH_WORK/$name.conf"
	[[ $(id -u) -ne 0 ]] || chown mosquitto:mosquitto "$BENCH_WORK"/*
	bench_start_broker "$name" "${port[$name]}"
	pid[$name]=$BROKER_PID
done

for round in $(seq 1 "$rounds"); do
	bench_log "round $round of $rounds"
	order=(tls_plain tls_plugin)
	((round % 2)) || order=(tls_plugin tls_plain)
	for name in "${order[@]}"; do
		bench_loadgen "$name" "${pid[$name]}" --port "${port[$name]}" \
			--cert-dir "$certs" \
			--cafile "$FLEETAUTH_BROKER_CA_FILE" \
			--concurrency "$concurrency" --timeout 90 >/dev/null
	done
done

cpu_per_connect=$bench_cpu_per_connect_filter
plain=$(bench_field_median tls_plain .connect_rate)
plain_cpu=$(bench_field_median tls_plain "$cpu_per_connect")
printf '\n== TLS CONNECT rate, %d device certificates, %d rounds, ' \
	"$devices" "$rounds"
printf '%d pending at most\n' "$concurrency"
bench_machine
printf '%-11s %11s %6s %10s %6s %10s %9s %8s %7s\n' broker connects/s \
	ratio "CPU us" ratio "median ms" "p99 ms" refused failed
for name in tls_plain tls_plugin; do
	rate=$(bench_field_median "$name" .connect_rate)
	cpu=$(bench_field_median "$name" "$cpu_per_connect")
	printf '%-11s %11.1f %6s %10.1f %6s %10.2f %9.2f %8s %7s\n' "$name" \
		"$rate" "$(bench_ratio "$rate" "$plain")" \
		"$cpu" "$(bench_ratio "$cpu" "$plain_cpu")" \
		"$(bench_field_median "$name" .connect_latency_ms.median)" \
		"$(bench_field_median "$name" .connect_latency_ms.p99)" \
		"$(bench_field_sum "$name" .refused)" \
		"$(bench_field_sum "$name" '.failed + .dropped')"
done
printf 'per-round connects/s:\n'
for name in tls_plain tls_plugin; do
	printf '  %-11s %s\n' "$name" "$(jq -r '.connect_rate' \
		"$BENCH_WORK/results/$name.jsonl" | tr '\n' ' ')"
done
