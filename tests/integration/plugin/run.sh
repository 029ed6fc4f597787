#!/usr/bin/env bash
# Runs every plugin test script in this folder against one stack and prints
# a summary. CTest runs the same scripts one by one.
#
#   run.sh ENV_FILE
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[[ $# -eq 1 && -r $1 ]] || {
	printf 'usage: run.sh ENV_FILE (from tools/stack up DIR)\n' >&2
	exit 2
}
failed=()
for script in "$here"/test_*.sh; do
	printf '== %s\n' "$(basename "$script")"
	bash "$script" "$1" || failed+=("$(basename "$script")")
done
if ((${#failed[@]} > 0)); then
	printf '\nfailed: %s\n' "${failed[*]}"
	exit 1
fi
printf '\nall plugin test scripts passed\n'
