#!/usr/bin/env bash
# Runs every broker benchmark against a fresh throwaway stack and prints
# the results blocks. A whole run took 7.5 minutes on the 2-core machine
# of docs/benchmarks-broker.md.
#
#   tools/bench/run-all.sh BUILD_DIR [OUTPUT_FILE]
#
# BUILD_DIR must contain the plugin, fleetauthd, fleetauth-loadgen,
# fleetauth-bench-mint and bench_plugin (configure the tree and build all
# targets). The stack lives in a temporary folder and is stopped at the
# end; the output also goes to OUTPUT_FILE when given.
set -euo pipefail

SOURCE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$(cd "${1:?usage: tools/bench/run-all.sh BUILD_DIR [OUTPUT_FILE]}" &&
	pwd)
output=${2:-/dev/null}
stack_dir=$(mktemp -d /tmp/fleetauth-bench-stack.XXXXXX)

stop_stack()
{
	"$SOURCE_DIR/tools/stack" down "$stack_dir" >/dev/null 2>&1 || true
	rm -rf "$stack_dir"
}
trap stop_stack EXIT

"$SOURCE_DIR/tools/stack" up "$stack_dir" --build "$build" --fast-bcrypt
export BENCH_ENV=$stack_dir/env BENCH_BUILD=$build
{
	commit=$(git -C "$SOURCE_DIR" rev-parse --short HEAD 2>/dev/null ||
		echo unknown)
	if [[ -n $(git -C "$SOURCE_DIR" status --porcelain 2>/dev/null) ]]; then
		commit+=" with uncommitted changes"
	fi
	printf 'fleetauth broker benchmarks, %s, commit %s\n' \
		"$(date -u '+%Y-%m-%d %H:%M UTC')" "$commit"
	"$SOURCE_DIR/tools/bench/connect.sh"
	"$SOURCE_DIR/tools/bench/tls.sh"
	"$SOURCE_DIR/tools/bench/publish.sh"
	"$SOURCE_DIR/tools/bench/acl.sh" "$build"
} 2>&1 | tee "$output"
