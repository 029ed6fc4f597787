# shellcheck shell=bash
# Helpers shared by the deployment tests: stopping the processes a test
# started, by pid and start time, never by name.
#
#   . "$(dirname "$0")/common.sh"

# Prints the start time of process pid from /proc (field 22 of
# /proc/PID/stat). A recorded pid whose start time changed was reused by
# another process.
proc_start_time()
{
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	# The command name in field 2 may contain spaces and parentheses.
	stat=${stat##*") "}
	awk '{ print $20 }' <<<"$stat"
}

# Sends SIGTERM to pid if it is still the process that started at
# start_time, waits up to 10 seconds for it to exit, then sends SIGKILL.
stop_recorded_pid()
{
	local pid=$1 start_time=$2 _
	[[ $(proc_start_time "$pid") == "$start_time" ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		[[ $(proc_start_time "$pid") == "$start_time" ]] || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}
