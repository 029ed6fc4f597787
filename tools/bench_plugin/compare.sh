#!/usr/bin/env bash
# Runs two bench_plugin builds alternately and prints the median of each
# timed line over the rounds, for a before-and-after comparison on a busy
# machine.
#
#   tools/bench_plugin/compare.sh BEFORE AFTER [ROUNDS [CONFIG...]]
#
# BEFORE and AFTER are bench_plugin executables. ROUNDS (default 3) rounds
# each run both binaries once per CONFIG, in alternating order. A CONFIG is
# "ASSIGNMENTS,SESSIONS" (default: 1000,1000 1000000,1000 1000000,10000).
# Prints one line per binary, configuration and timed kind: the median of
# its "median N ns per check" figure over the rounds, and the round values.
set -euo pipefail

before=${1:?usage: compare.sh BEFORE AFTER [ROUNDS [CONFIG...]]}
after=${2:?usage: compare.sh BEFORE AFTER [ROUNDS [CONFIG...]]}
rounds=${3:-3}
shift $(($# < 3 ? $# : 3))
configs=("$@")
((${#configs[@]} > 0)) || configs=("1000,1000" "1000000,1000" "1000000,10000")

for bin in "$before" "$after"; do
	[[ -x $bin ]] || {
		echo "compare.sh: $bin is not an executable" >&2
		exit 1
	}
done
work=$(mktemp -d /tmp/fleetauth-bench-compare.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Appends "LABEL|CONFIG|KIND|NS" lines for one run of one binary.
run_one()
{
	local label=$1 bin=$2 config=$3
	"$bin" "${config%,*}" "${config#*,}" |
		sed -n "s/^\(ACL [^:]*\): *median \([0-9]*\) ns.*/$label|$config|\1|\2/p" \
			>>"$work/results"
}

for round in $(seq 1 "$rounds"); do
	echo "compare.sh: round $round of $rounds, load average" \
		"$(cut -d' ' -f1-3 /proc/loadavg)" >&2
	for config in "${configs[@]}"; do
		if ((round % 2 == 1)); then
			run_one before "$before" "$config"
			run_one after "$after" "$config"
		else
			run_one after "$after" "$config"
			run_one before "$before" "$config"
		fi
	done
done

printf '%-7s %-15s %-36s %8s  %s\n' binary config kind median rounds
cut -d'|' -f1-3 "$work/results" | awk '!seen[$0]++' | while read -r key; do
	IFS='|' read -r label config kind <<<"$key"
	values=$(grep -F "$key|" "$work/results" | cut -d'|' -f4)
	median=$(sort -n <<<"$values" | awk '{ v[NR] = $1 }
		END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
	printf '%-7s %-15s %-36s %8s  %s\n' "$label" "$config" "$kind" \
		"$median" "$(tr '\n' ' ' <<<"$values")"
done
