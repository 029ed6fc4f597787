#!/usr/bin/env bash
# Counts the instructions per ACL check of a bench_plugin binary under
# callgrind. Unlike CPU time, these counts repeat exactly from run to
# run, so they show small changes on a busy machine.
#
#   tools/bench_plugin/callgrind.sh BENCH_PLUGIN [ASSIGNMENTS [SESSIONS [BATCHES]]]
#
# BENCH_PLUGIN is the bench_plugin executable. BATCHES (default 20) is
# passed as its third argument, so each timed kind makes BATCHES * 1,000
# checks. Prints one line per timed kind with the instructions executed
# inside bench_plugin's timing loop (time_acl) divided by the checks: the
# checks themselves plus about 10 instructions of loop per check. Untimed
# warm-up checks are not counted. A binary that takes no third argument
# must have been built with that batch count.
set -euo pipefail

bench=${1:?usage: callgrind.sh BENCH_PLUGIN [ASSIGNMENTS [SESSIONS [BATCHES]]]}
assignments=${2:-1000}
sessions=${3:-1000}
batches=${4:-20}
checks=$((batches * 1000))

command -v valgrind >/dev/null || {
	echo "callgrind.sh: valgrind not found: install valgrind" >&2
	exit 1
}
work=$(mktemp -d /tmp/fleetauth-callgrind.XXXXXX)
trap 'rm -rf "$work"' EXIT

valgrind --tool=callgrind --callgrind-out-file="$work/out.%p" \
	--toggle-collect=time_acl --dump-after=time_acl \
	"$bench" "$assignments" "$sessions" "$batches" >"$work/stdout" \
	2>"$work/valgrind.log" || {
	echo "callgrind.sh: $bench failed; valgrind log:" >&2
	cat "$work/valgrind.log" >&2
	exit 1
}

# bench_plugin prints one "ACL ..." line per timed kind, in the order of
# the dumps, and each dump covers one call of time_acl.
mapfile -t kinds < <(sed -n 's/^\(ACL [^:]*\):.*/\1/p' "$work/stdout")
mapfile -t dumps < <(find "$work" -name 'out.*.*' | sort -t. -k3 -n)
if ((${#kinds[@]} != ${#dumps[@]})); then
	echo "callgrind.sh: ${#kinds[@]} timed kinds but ${#dumps[@]}" \
		"callgrind dumps" >&2
	exit 1
fi
printf 'instructions per check, %s assignments, %s sessions, %s checks each\n' \
	"$assignments" "$sessions" "$checks"
for i in "${!dumps[@]}"; do
	total=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "${dumps[$i]}")
	printf '  %-34s %6d\n' "${kinds[$i]}" $((total / checks))
done
