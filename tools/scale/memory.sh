#!/usr/bin/env bash
# Broker memory under fresh-token CONNECTs: BATCHES batches of BATCH token
# clients, each with a token the broker has not seen, connect to one plugin
# broker and disconnect again. After every batch the script prints the
# broker's VmRSS. It runs the same sequence against a broker with the
# default token cache and against one with token_cache_size 0. Growth that
# appears only with the cache comes from the cache.
#
#   tools/scale/memory.sh BUILD_DIR [BATCHES [BATCH]]
#
# Defaults: 20 batches of 1000 clients. Starts its own stack in a temporary
# folder with tools/stack and stops it on exit.
set -euo pipefail

readonly SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly USAGE="usage: memory.sh BUILD_DIR [BATCHES [BATCH]]"
build=$(cd "${1:?$USAGE}" && pwd)
batches=${2:-20}
batch=${3:-1000}
loadgen=$build/tools/loadgen/fleetauth-loadgen
mint=$build/tools/bench/fleetauth-bench-mint
for tool in "$loadgen" "$mint"; do
	[[ -x $tool ]] || {
		echo "error: $tool not found: build it in $build" >&2
		exit 1
	}
done

work=$(mktemp -d /tmp/fleetauth-scale-memory.XXXXXX)
broker_pid=
cleanup()
{
	[[ -z $broker_pid ]] || kill "$broker_pid" 2>/dev/null || true
	"$SRC_DIR/tools/stack" down "$work/stack" >/dev/null 2>&1 || true
	[[ -n ${SCALE_KEEP:-} ]] || rm -rf "$work"
}
trap cleanup EXIT

"$SRC_DIR/tools/stack" up "$work/stack" --fast-bcrypt --build "$build" \
	>"$work/stack-up.log" 2>&1 || {
	tail -n 20 "$work/stack-up.log" >&2
	exit 1
}
set -a
. "$work/stack/env"
set +a

total=$((batches * batch))
tag=m$(openssl rand -hex 3)
psql -X -q -v ON_ERROR_STOP=1 <<EOF
INSERT INTO carriers (id, name) VALUES ('$tag', 'memory');
INSERT INTO principals (id, kind)
	SELECT '${tag}d' || i, 'user' FROM generate_series(1, $total) i;
INSERT INTO users (id, carrier_id, role, password_hash)
	SELECT '${tag}d' || i, '$tag', 'driver', 'x'
	FROM generate_series(1, $total) i;
EOF
kid=$(psql -X -q -A -t -c \
	"SELECT kid FROM signing_keys WHERE status = 'current'")

port=$((20000 + RANDOM % 12000))
while [[ -n $(ss -Htan "sport = :$port") ]]; do
	port=$((20000 + RANDOM % 12000))
done
plugin_lines=$(grep -E '^(plugin|plugin_opt_[a-z_]+) ' \
	"${FLEETAUTH_MOSQUITTO_CONFS%%,*}")
for cache in default 0; do
	{
		printf 'per_listener_settings false\npersistence false\n'
		printf 'log_dest stderr\nlog_type error\nlog_type warning\n'
		printf 'allow_anonymous false\nlistener %s 127.0.0.1\n' "$port"
		printf '%s\n' "$plugin_lines"
		[[ $cache == default ]] ||
			printf 'plugin_opt_token_cache_size %s\n' "$cache"
	} >"$work/cache-$cache.conf"
done
chown -R mosquitto:mosquitto "$work" 2>/dev/null || true

rss()
{
	awk '/^VmRSS:/ { print $2 }' "/proc/$broker_pid/status"
}

printf 'scenario: %d batches of %d fresh-token CONNECTs and disconnects\n' \
	"$batches" "$batch"
printf 'machine: %s cores, load average %s\n' "$(nproc)" \
	"$(cut -d' ' -f1-3 /proc/loadavg)"
for cache in default 0; do
	# Fresh tokens for every broker, so that no token is in a cache.
	"$mint" --key "$FLEETAUTH_SIGNING_KEY" --kid "$kid" \
		--prefix "${tag}d" --count "$total" --carrier "$tag" \
		--issuer "$FLEETAUTH_ISSUER" --audience "$FLEETAUTH_AUDIENCE" \
		>"$work/clients"
	/usr/sbin/mosquitto -c "$work/cache-$cache.conf" \
		>"$work/broker-$cache.log" 2>&1 &
	broker_pid=$!
	for _ in $(seq 1 100); do
		ss -Hltnp "sport = :$port" | grep -q "pid=$broker_pid," && break
		sleep 0.1
	done
	printf 'token_cache_size %s: VmRSS KiB at start %s, after batches:' \
		"$cache" "$(rss)"
	for ((b = 0; b < batches; b++)); do
		sed -n "$((b * batch + 1)),$(((b + 1) * batch))p" \
			"$work/clients" >"$work/batch"
		connected=$("$loadgen" --json --port "$port" \
			--clients "$work/batch" --concurrency 32 --hold 0 \
			--timeout 60 2>/dev/null | jq -r .connected)
		[[ $connected == "$batch" ]] || {
			echo
			echo "error: batch $((b + 1)) connected $connected" \
				"of $batch clients; see" \
				"$work/broker-$cache.log" >&2
			exit 1
		}
		printf ' %s' "$(rss)"
	done
	printf '\n'
	kill "$broker_pid"
	wait "$broker_pid" 2>/dev/null || true
	broker_pid=
done
