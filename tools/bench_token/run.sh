#!/bin/sh
# Runs fleetauth-bench-token next to `openssl speed rsa2048` and prints one
# block of results. Usage: tools/bench_token/run.sh [BUILD_DIR] [SECONDS]
# BUILD_DIR defaults to build; SECONDS (default 3) is passed to
# `openssl speed -seconds`.
set -eu

build_dir=${1:-build}
seconds=${2:-3}
bench="$build_dir/tools/bench_token/fleetauth-bench-token"

if [ ! -x "$bench" ]; then
	echo "run.sh: $bench not found; build it first:" >&2
	echo "  cmake --build $build_dir --target fleetauth-bench-token" >&2
	exit 1
fi

echo "== machine"
echo "date:      $(date -u +%Y-%m-%dT%H:%MZ)"
echo "nproc:     $(nproc)"
echo "cpu:       $(lscpu | sed -n 's/^Model name: *//p' | head -n 1)"
echo "openssl:   $(openssl version)"
echo "load avg:  $(cut -d" " -f1-3 /proc/loadavg) (1, 5, 15 min)"
echo
echo "== fleetauth-bench-token"
"$bench"
echo
echo "== openssl speed -seconds $seconds rsa2048"
openssl speed -seconds "$seconds" rsa2048 2>/dev/null | tail -n 2
