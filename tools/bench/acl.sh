#!/usr/bin/env bash
# In-process ACL decision time of the plugin with 1,000, 100,000 and
# 1,000,000 load assignments in memory. Runs bench_plugin (built from
# tools/bench_plugin, which compiles the plugin's state and ACL sources
# into a program without a broker) once per size and prints its lines.
#
#   tools/bench/acl.sh BUILD_DIR [SIZES...]
#
# Times are medians of the CPU time per check over batches of 1,000
# calls; see tools/bench_plugin/bench_acl.c.
set -euo pipefail

build=${1:?usage: tools/bench/acl.sh BUILD_DIR [SIZES...]}
shift
sizes=("$@")
((${#sizes[@]})) || sizes=(1000 100000 1000000)
program=$build/tools/bench_plugin/bench_plugin
[[ -x $program ]] || {
	printf 'bench: error: %s not found: build the bench_plugin target\n' \
		"$program" >&2
	exit 1
}

printf '\n== In-process ACL decision time (bench_plugin)\n'
printf 'machine: %s, %s cores, load average %s\n' \
	"$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)" "$(nproc)" \
	"$(cut -d' ' -f1-3 /proc/loadavg)"
# The same 1,000 driver sessions at every size, so that only the number of
# assignments changes; then 10,000 sessions at the largest size.
# bench_plugin needs SESSIONS <= ASSIGNMENTS.
largest=${sizes[${#sizes[@]} - 1]}
for run in "${sizes[@]/%/:1000}" "$largest:10000"; do
	size=${run%%:*}
	sessions=${run##*:}
	((sessions <= size)) || sessions=$size
	printf -- '-- %s assignments, %s driver sessions\n' "$size" "$sessions"
	timeout 300 "$program" "$size" "$sessions" | sed 's/^/   /'
done
