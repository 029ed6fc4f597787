#!/usr/bin/env bash
# Runs the authentication benchmark against a stack that tools/stack up
# started, and prints the machine, the commands and the results:
#
#   tools/bench_auth/run.sh STACK_DIR/env [BUILD_DIR]
#
# It creates one carrier and one driver through the admin API and stores a
# bcrypt cost-12 hash for the driver, also when the stack hashes at cost 4
# (--fast-bcrypt), so that logins pay the production cost. Counts are kept
# small (LOGINS, REFRESHES, BCRYPTS, THREADS in the environment override
# them) and every request goes to the stack's loopback URL.
set -euo pipefail

env_file=${1:?usage: run.sh STACK_DIR/env [BUILD_DIR]}
build=${2:-$(cd "$(dirname "$0")/../.." && pwd)/build}
bench=$build/tools/bench_auth/bench_auth
if [[ ! -x $bench ]]; then
	echo "run.sh: $bench not found: build the bench_auth target first" >&2
	exit 1
fi
# shellcheck disable=SC1090
. "$env_file"

logins=${LOGINS:-40}
refreshes=${REFRESHES:-1000}
bcrypts=${BCRYPTS:-40}
threads=${THREADS:-$(nproc)}
run=$(openssl rand -hex 4)
carrier=bench-$run
user=bench-drv-$run
export BENCH_PASSWORD="bench password $(openssl rand -hex 8)"

api()
{
	curl -sf -o /dev/null -X POST -H "Authorization: Bearer $FLEETAUTH_ADMIN_KEY" \
		-H 'Content-Type: application/json' --data-binary "$2" \
		"$FLEETAUTH_URL$1"
}
api /v1/carriers "{\"id\": \"$carrier\", \"name\": \"Benchmark\"}"
api /v1/users "$(jq -cn --arg u "$user" --arg p "$BENCH_PASSWORD" \
	--arg c "$carrier" '{username: $u, password: $p, role: "driver",
	carrier: $c}')"
hash=$("$bench" hash --cost 12)
# psql substitutes :'name' only in scripts read from stdin, not with -c.
psql -X -q -v ON_ERROR_STOP=1 -v hash="$hash" -v id="$user" \
	<<<"UPDATE users SET password_hash = :'hash' WHERE id = :'id'"

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
echo "machine: $(nproc) CPUs, $cpu, $(uname -sr)"
echo "load average before the run: $(cut -d" " -f1-3 /proc/loadavg)"
cost=$(cut -d'$' -f3 <<<"$hash")
echo "stack: $FLEETAUTH_URL, user $user hashed at cost $cost"
set -x
"$bench" bcrypt --cost 12 --count "$bcrypts" --threads 1
"$bench" bcrypt --cost 12 --count "$bcrypts" --threads "$threads"
"$bench" login --url "$FLEETAUTH_URL" --user "$user" --count "$logins" \
	--threads "$threads"
"$bench" refresh --url "$FLEETAUTH_URL" --user "$user" \
	--count "$refreshes" --threads 1
"$bench" refresh --url "$FLEETAUTH_URL" --user "$user" \
	--count "$refreshes" --threads "$threads"
