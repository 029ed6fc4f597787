# shellcheck shell=bash
# Helpers shared by the broker benchmarks; sourced, not run. They start
# their own Mosquitto processes on free 127.0.0.1 ports, record each pid and
# stop exactly those pids on exit.
#
# Needs: BENCH_ENV (the env file of tools/stack up) and BENCH_BUILD (a build
# directory with tools/loadgen/fleetauth-loadgen and
# tools/bench/fleetauth-bench-mint).

readonly MOSQUITTO_BIN=${FLEETAUTH_MOSQUITTO:-/usr/sbin/mosquitto}
readonly DYNSEC_DEFAULT=/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so
# shellcheck disable=SC2034 # used by the scripts that source this file
readonly DYNSEC_PLUGIN=${FLEETAUTH_DYNSEC_PLUGIN:-$DYNSEC_DEFAULT}
readonly BROKER_START_TIMEOUT=60 # seconds; a 1,000,000-row snapshot is slow

BENCH_PIDS=()
BENCH_WORK=

bench_log()
{
	printf 'bench: %s\n' "$*" >&2
}

bench_die()
{
	printf 'bench: error: %s\n' "$*" >&2
	exit 1
}

bench_cleanup()
{
	local pid
	for pid in "${BENCH_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${BENCH_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ -n $BENCH_WORK && -z ${BENCH_KEEP:-} ]]; then
		rm -rf "$BENCH_WORK"
	fi
}

# Loads the stack's env file, checks the tools and creates BENCH_WORK. The
# folder belongs to the mosquitto user when run as root, because Mosquitto
# drops to that user and re-reads nothing else.
bench_init()
{
	local name=$1
	[[ -r ${BENCH_ENV:-} ]] ||
		bench_die "BENCH_ENV must name the env file of a running" \
			"tools/stack (got '${BENCH_ENV:-}')"
	set -a
	# shellcheck disable=SC1090
	. "$BENCH_ENV"
	set +a
	BENCH_BUILD=${BENCH_BUILD:-$FLEETAUTH_BUILD_DIR}
	LOADGEN=$BENCH_BUILD/tools/loadgen/fleetauth-loadgen
	MINT=$BENCH_BUILD/tools/bench/fleetauth-bench-mint
	[[ -x $LOADGEN ]] || bench_die "$LOADGEN not found: build the" \
		"fleetauth-loadgen target in $BENCH_BUILD"
	[[ -x $MINT ]] || bench_die "$MINT not found: build the" \
		"fleetauth-bench-mint target in $BENCH_BUILD"
	command -v jq >/dev/null || bench_die "jq not found: install jq"
	BENCH_WORK=$(mktemp -d "/tmp/fleetauth-bench-$name.XXXXXX")
	if [[ $(id -u) -eq 0 ]]; then
		chown mosquitto:mosquitto "$BENCH_WORK"
	fi
	trap bench_cleanup EXIT
	# Tags every row this run inserts, so runs never collide.
	BENCH_TAG=b$(openssl rand -hex 3)
	ulimit -n "$(ulimit -Hn)"
}

# Prints a free TCP port below the ephemeral range that no socket uses.
bench_free_port()
{
	local port _
	for _ in $(seq 1 100); do
		port=$((20000 + RANDOM % 12000))
		if [[ -z $(ss -Htan "sport = :$port" 2>/dev/null) ]]; then
			printf '%s\n' "$port"
			return 0
		fi
	done
	bench_die "no free port found between 20000 and 32000"
}

# Prints the plugin lines of the stack's first broker configuration
# ("plugin" and every "plugin_opt_"), for brokers that use the plugin.
bench_plugin_lines()
{
	local conf=${FLEETAUTH_MOSQUITTO_CONFS%%,*}
	grep -E '^(plugin|plugin_opt_[a-z_]+) ' "$conf" ||
		bench_die "no plugin lines in $conf"
}

# Starts Mosquitto with BENCH_WORK/NAME.conf and waits until it listens on
# port. Sets BROKER_PID. Its log goes to BENCH_WORK/NAME.log.
bench_start_broker()
{
	local name=$1 port=$2 conf=$BENCH_WORK/$1.conf _
	if [[ $(id -u) -eq 0 ]]; then
		chown mosquitto:mosquitto "$conf"
	fi
	"$MOSQUITTO_BIN" -c "$conf" >"$BENCH_WORK/$name.log" 2>&1 &
	BROKER_PID=$!
	BENCH_PIDS+=("$BROKER_PID")
	for _ in $(seq 1 $((BROKER_START_TIMEOUT * 10))); do
		if ss -Hltnp "sport = :$port" 2>/dev/null |
			grep -q "pid=$BROKER_PID,"; then
			return 0
		fi
		kill -0 "$BROKER_PID" 2>/dev/null || break
		sleep 0.1
	done
	tail -n 20 "$BENCH_WORK/$name.log" >&2
	bench_die "broker $name did not listen on 127.0.0.1:$port within" \
		"$BROKER_START_TIMEOUT s (log above)"
}

bench_stop_broker()
{
	local pid=$1
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# Prints the resident set size of pid in KiB (VmRSS in /proc/PID/status).
bench_rss_kib()
{
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# Prints the median of the numbers on stdin, one a line.
bench_median()
{
	sort -g | awk '{ v[NR] = $1 }
		END { if (NR == 0) print "nan";
		      else if (NR % 2) print v[(NR + 1) / 2];
		      else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Prints the CPU time that process pid has used so far, in nanoseconds
# (first field of /proc/PID/schedstat: the main thread, which is the whole
# of Mosquitto 2.0's work).
bench_cpu_ns()
{
	awk '{ print $1 }' "/proc/$1/schedstat"
}

# Runs fleetauth-loadgen with --json against the broker with pid, adds the
# broker's CPU time during the run as broker_cpu_ms, appends the JSON line
# to BENCH_WORK/results/NAME.jsonl and prints it.
bench_loadgen()
{
	local name=$1 pid=$2 out before after
	shift 2
	mkdir -p "$BENCH_WORK/results"
	before=$(bench_cpu_ns "$pid")
	out=$("$LOADGEN" --json "$@") ||
		bench_die "fleetauth-loadgen failed for $name"
	after=$(bench_cpu_ns "$pid")
	if [[ $(jq -r .timed_out <<<"$out") == true ]]; then
		bench_log "warning: run $name hit its --timeout; its numbers" \
			"cover only the part before the timeout"
	fi
	out=$(jq -c --argjson ms "$(((after - before) / 1000000))" \
		'. + {broker_cpu_ms: $ms}' <<<"$out")
	printf '%s\n' "$out" >>"$BENCH_WORK/results/$name.jsonl"
	printf '%s\n' "$out"
}

# Prints the broker CPU time per successful CONNECT of one run (JSON on
# stdin) in microseconds; the DISCONNECT that ends each client is included.
# shellcheck disable=SC2034 # used by the scripts that source this file
bench_cpu_per_connect_filter='if .connected > 0
	then .broker_cpu_ms * 1000 / .connected else 0 end'

# Prints the sum of a JSON expression over every run recorded for name.
bench_field_sum()
{
	jq -s "map($2) | add" "$BENCH_WORK/results/$1.jsonl"
}

# Prints the median of a JSON field over every run recorded for name.
bench_field_median()
{
	local name=$1 field=$2
	jq -r "$field" "$BENCH_WORK/results/$name.jsonl" | bench_median
}

# Prints a / b with 3 decimals.
bench_ratio()
{
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f\n", a / b;
		else print "nan" }'
}

# Prints the machine line of the results block.
bench_machine()
{
	printf 'machine: %s, %s cores, load average %s\n' \
		"$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)" \
		"$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
}

# Inserts carrier BENCH_TAG and count drivers ${BENCH_TAG}d1 .. dN.
bench_insert_drivers()
{
	local count=$1
	psql -X -q -v ON_ERROR_STOP=1 <<EOF
INSERT INTO carriers (id, name) VALUES ('$BENCH_TAG', 'benchmark')
	ON CONFLICT DO NOTHING;
INSERT INTO principals (id, kind)
	SELECT '${BENCH_TAG}d' || i, 'user' FROM generate_series(1, $count) i;
INSERT INTO users (id, carrier_id, role, password_hash)
	SELECT '${BENCH_TAG}d' || i, '$BENCH_TAG', 'driver', 'x'
	FROM generate_series(1, $count) i;
EOF
}

# Prints the kid of the current signing key.
bench_current_kid()
{
	psql -X -q -A -t -c \
		"SELECT kid FROM signing_keys WHERE status = 'current'"
}

# Writes count token-client lines for drivers 1..count to file, each token
# fresh (random jti).
bench_mint()
{
	local file=$1 count=$2
	"$MINT" --key "$FLEETAUTH_SIGNING_KEY" --kid "$(bench_current_kid)" \
		--prefix "${BENCH_TAG}d" --count "$count" \
		--carrier "$BENCH_TAG" --issuer "$FLEETAUTH_ISSUER" \
		--audience "$FLEETAUTH_AUDIENCE" >"$file" ||
		bench_die "fleetauth-bench-mint failed"
}

# Writes a dynamic-security configuration: one client per line of
# clients_file (username = second field, password pw-<username>), all with
# role "bench". The role has acl_count - 1 publish, receive and subscribe
# entries that match nothing the clients use, and last (lowest priority)
# one allow entry each for the topic pattern given, so every check walks
# the whole list.
bench_dynsec_config()
{
	local out=$1 clients_file=$2 acl_count=$3 pattern=$4
	python3 - "$out" "$clients_file" "$acl_count" "$pattern" <<'EOF'
import base64, hashlib, json, os, sys

out, clients_file, acl_count, pattern = sys.argv[1:5]
acl_count = int(acl_count)
clients = []
with open(clients_file) as f:
    for line in f:
        fields = line.split()
        if len(fields) < 3 or fields[0].startswith('#'):
            continue
        salt = os.urandom(12)
        digest = hashlib.pbkdf2_hmac('sha512',
                                     ('pw-' + fields[1]).encode(), salt,
                                     101, 64)
        clients.append({'username': fields[1],
                        'password': base64.b64encode(digest).decode(),
                        'salt': base64.b64encode(salt).decode(),
                        'iterations': 101,
                        'roles': [{'rolename': 'bench'}]})
acls = []
for i in range(acl_count - 1):
    for kind in ('publishClientSend', 'publishClientReceive',
                 'subscribePattern'):
        acls.append({'acltype': kind, 'topic': 'other/%d/#' % i,
                     'priority': acl_count - i, 'allow': True})
for kind in ('publishClientSend', 'publishClientReceive',
             'subscribePattern'):
    acls.append({'acltype': kind, 'topic': pattern, 'priority': 0,
                 'allow': True})
config = {
    'defaultACLAccess': {'publishClientSend': False,
                         'publishClientReceive': False,
                         'subscribe': False, 'unsubscribe': True},
    'clients': clients, 'groups': [],
    'roles': [{'rolename': 'bench', 'acls': acls}],
}
with open(out, 'w') as f:
    json.dump(config, f)
EOF
}

# Rewrites a clients file with the password pw-<username>, for the
# password_file and dynamic-security brokers.
bench_password_clients()
{
	awk '{ print $1, $2, "pw-" $2, $4 }' "$1"
}

# Writes a Mosquitto password file for the clients file (mosquitto_passwd
# hashes it in place).
bench_password_file()
{
	local out=$1 clients_file=$2
	awk '{ print $2 ":pw-" $2 }' "$clients_file" >"$out"
	mosquitto_passwd -U "$out" ||
		bench_die "mosquitto_passwd -U $out failed"
}
