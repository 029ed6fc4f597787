#!/usr/bin/env bash
# /healthz and /readyz, request ids, schema version checks of readyz and
# migrate, and reconnection after the database dropped the connections.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"
. "$(dirname "$0")/common.sh"

raw_api "" GET /healthz
fa_expect_status 200 "healthz"
fa_expect_eq "$(body_field .status)" ok "healthz status"
fa_expect_contains "$FA_HEADERS" "Content-Type: application/json" \
	"healthz content type"

raw_api "" GET /readyz
fa_expect_status 200 "readyz"
fa_expect_eq "$(body_field .status)" ready "readyz status"
version=$(fa_sql "SELECT max(version) FROM schema_migrations")
fa_expect_eq "$(body_field .schema_version)" "$version" \
	"schema version in readyz"

# Request ids: generated, or taken from a valid incoming header.
raw_api "" GET /healthz
[[ $FA_HEADERS =~ X-Request-Id:\ ([0-9a-f]{32}) ]] ||
	fa_fail "generated X-Request-Id missing: $FA_HEADERS"
raw_api "" GET /healthz -H "X-Request-Id: trace-$SFX"
fa_expect_contains "$FA_HEADERS" "X-Request-Id: trace-$SFX" "echoed id"
raw_api "" GET /healthz -H "X-Request-Id: bad id<script>"
fa_expect_not_contains "$FA_HEADERS" "<script>" "invalid incoming id"
long=$(printf 'a%.0s' {1..40})
raw_api "" GET /healthz -H "X-Request-Id: $long"
fa_expect_not_contains "$FA_HEADERS" "$long" "over-long incoming id"

# A database ahead of the binary: readyz fails and migrate refuses.
fa_sql "INSERT INTO schema_migrations (version, name)
	VALUES (999, '999_from_the_future.sql')"
fa_on_exit "fa_sql \"DELETE FROM schema_migrations WHERE version = 999\""
raw_api "" GET /readyz
expect_problem 503 unavailable "readyz with a newer schema"
fa_expect_contains "$(body_field .detail)" "999" "readyz detail"
rc=0
"$FLEETAUTHD" -c "$FLEETAUTHD_CONFIG" migrate >"$FA_TMP/migrate.out" 2>&1 ||
	rc=$?
fa_expect_ne "$rc" 0 "exit code of migrate against a newer schema"
fa_expect_contains "$(cat "$FA_TMP/migrate.out")" "schema version 999" \
	"migrate message"
fa_sql "DELETE FROM schema_migrations WHERE version = 999"
raw_api "" GET /readyz
fa_expect_status 200 "readyz after the newer version is gone"

# migrate is idempotent.
before=$(fa_sql "SELECT count(*) FROM schema_migrations")
"$FLEETAUTHD" -c "$FLEETAUTHD_CONFIG" migrate >"$FA_TMP/migrate.out" 2>&1 ||
	fa_fail "second migrate failed: $(cat "$FA_TMP/migrate.out")"
after=$(fa_sql "SELECT count(*) FROM schema_migrations")
fa_expect_eq "$after" "$before" "migrations recorded after a second run"

# Two migrators at once: the advisory lock serializes them.
"$FLEETAUTHD" -c "$FLEETAUTHD_CONFIG" migrate >"$FA_TMP/m1.out" 2>&1 &
m1=$!
"$FLEETAUTHD" -c "$FLEETAUTHD_CONFIG" migrate >"$FA_TMP/m2.out" 2>&1 &
m2=$!
wait "$m1" || fa_fail "concurrent migrate 1 failed: $(cat "$FA_TMP/m1.out")"
wait "$m2" || fa_fail "concurrent migrate 2 failed: $(cat "$FA_TMP/m2.out")"

# The server ends every fleetauthd connection; the next requests reconnect.
killed=$(fa_sql "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
	WHERE usename = current_user AND pid <> pg_backend_pid()
	AND datname = current_database()")
((killed > 0)) || fa_fail "no fleetauthd database connection to terminate"
for i in 1 2 3 4 5 6 7 8; do
	fa_api GET /v1/carriers?limit=1
	fa_expect_status 200 "request $i after the connections were terminated"
done
raw_api "" GET /readyz
fa_expect_status 200 "readyz after reconnection"
