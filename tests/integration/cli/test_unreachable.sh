#!/usr/bin/env bash
# An unreachable or silent service gives one clear line: connection refused
# on a closed port, and a timeout on a port that accepts but never responds.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
. "$(dirname "$0")/common.sh"

port=$(closed_port)
ctl_run --url "http://127.0.0.1:$port" --api-key fak_x users list
expect_error 1 \
	"cannot reach http://127.0.0.1:$port: connection refused (is fleetauthd running? check --url)" \
	"closed port"
ctl_run --url "http://127.0.0.1:$port" status
expect_error 1 "is not healthy" "status against a closed port"
fa_expect_contains "$CTL_OUT" "connection refused" "status output"

# A listener that accepts connections and never responds.
port=$(closed_port)
python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
print("listening", flush=True)
time.sleep(60)
' "$port" >"$FA_TMP/silent.out" 2>&1 &
silent=$!
fa_on_exit "kill $silent 2>/dev/null"
fa_wait_for "grep -qs listening '$FA_TMP/silent.out'" 10
started=$SECONDS
ctl_run --url "http://127.0.0.1:$port" --timeout 2 --api-key fak_x users list
expect_error 1 "no response from http://127.0.0.1:$port within 2 s" \
	"silent listener"
((SECONDS - started <= 6)) ||
	fa_fail "--timeout 2 took $((SECONDS - started)) s"
