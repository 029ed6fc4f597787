#!/usr/bin/env bash
# GET /metrics: every line is valid Prometheus text format 0.0.4, the
# families and HELP/TYPE lines are present, request counters and the
# duration histogram grow with requests, and a client address that
# metrics_allow does not list gets 403.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"

scrape()
{
	curl -s --max-time "$FA_CLIENT_TIMEOUT" "$FLEETAUTH_URL/metrics"
}

# Prints the value of the series whose name and labels are exactly $1, or 0
# when it is absent.
series_value()
{
	awk -v key="$1" '$1 == key { print $2; found = 1 }
		END { if (!found) print 0 }' <<<"$2"
}

headers=$FA_TMP/headers
curl -s -D "$headers" -o "$FA_TMP/body" --max-time "$FA_CLIENT_TIMEOUT" \
	"$FLEETAUTH_URL/metrics" || fa_fail "GET /metrics failed"
fa_expect_contains "$(tr -d '\r' <"$headers")" \
	"Content-Type: text/plain; version=0.0.4" "content type of /metrics"
body=$(cat "$FA_TMP/body")

# Every line is a comment (HELP or TYPE) or "name{labels} value".
comment='^# (HELP [a-z_]+ .+|TYPE [a-z_]+ (counter|gauge|histogram))$'
label='[a-z_]+="[^"\\]*"'
sample="^[a-z_]+(\{$label(,$label)*\})? [0-9]+(\.[0-9]+)?$"
while IFS= read -r line; do
	[[ $line =~ $comment || $line =~ $sample ]] ||
		fa_fail "line of /metrics does not parse: '$line'"
done <<<"$body"

for family in fleetauthd_build_info fleetauthd_http_requests_total \
	fleetauthd_http_request_duration_seconds fleetauthd_logins_total \
	fleetauthd_refreshes_total fleetauthd_refresh_reuse_detected_total \
	fleetauthd_lockouts_total fleetauthd_db_errors_total; do
	fa_expect_contains "$body" "# TYPE $family " "TYPE line of $family"
done
fa_expect_contains "$body" 'fleetauthd_logins_total{outcome="success"} ' \
	"login outcome series"
fa_expect_contains "$body" \
	'fleetauthd_refreshes_total{outcome="reused"} ' \
	"refresh outcome series"
fa_expect_eq "$(grep -c '^fleetauthd_build_info{version="[^"]*",schema="[0-9]*"} 1$' \
	<<<"$body")" 1 "build_info series"

# Counters grow by exactly the requests sent in between.
healthz='fleetauthd_http_requests_total{route="/healthz",method="GET",status="200"}'
users='fleetauthd_http_requests_total{route="/v1/users/{id}",method="GET",status="404"}'
unmatched='fleetauthd_http_requests_total{route="unmatched",method="GET",status="404"}'
histogram='fleetauthd_http_request_duration_seconds_count{route="/healthz",method="GET"}'
before=$(scrape)
for i in 1 2 3; do
	fa_api_as "" GET /healthz
	fa_expect_status 200 "GET /healthz"
done
fa_api GET /v1/users/no-such-user-metrics
fa_expect_status 404 "GET of an unknown user"
fa_api_as "" GET /no/such/path
fa_expect_status 404 "GET of an unknown path"
after=$(scrape)
fa_expect_eq "$(($(series_value "$healthz" "$after") - \
	$(series_value "$healthz" "$before")))" 3 "growth of the /healthz counter"
fa_expect_eq "$(($(series_value "$users" "$after") - \
	$(series_value "$users" "$before")))" 1 "growth of the 404 counter"
fa_expect_eq "$(($(series_value "$unmatched" "$after") - \
	$(series_value "$unmatched" "$before")))" 1 \
	"growth of the unmatched counter"
fa_expect_eq "$(($(series_value "$histogram" "$after") - \
	$(series_value "$histogram" "$before")))" 3 \
	"growth of the /healthz histogram count"
inf='fleetauthd_http_request_duration_seconds_bucket{route="/healthz",method="GET",le="+Inf"}'
fa_expect_eq "$(series_value "$inf" "$after")" \
	"$(series_value "$histogram" "$after")" "+Inf bucket equals count"

# A failed login and a failed refresh each count under their outcome.
bad_login='fleetauthd_logins_total{outcome="bad_credentials"}'
bad_refresh='fleetauthd_refreshes_total{outcome="invalid"}'
before=$(scrape)
fa_api_as "" POST /v1/auth/login \
	'{"username":"metrics-nobody","password":"not-the-password-1"}'
fa_expect_status 401 "login of an unknown user"
fa_api_as "" POST /v1/auth/refresh \
	'{"refresh_token":"frt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}'
fa_expect_status 401 "refresh with an unknown token"
after=$(scrape)
fa_expect_eq "$(($(series_value "$bad_login" "$after") - \
	$(series_value "$bad_login" "$before")))" 1 \
	"growth of the bad_credentials login counter"
fa_expect_eq "$(($(series_value "$bad_refresh" "$after") - \
	$(series_value "$bad_refresh" "$before")))" 1 \
	"growth of the invalid refresh counter"

# Buckets are cumulative: each le bucket is at least the one before.
previous=0
while read -r value; do
	((value >= previous)) ||
		fa_fail "histogram buckets of /healthz are not cumulative"
	previous=$value
done < <(grep '^fleetauthd_http_request_duration_seconds_bucket{route="/healthz",method="GET"' \
	<<<"$after" | awk '{ print $2 }')

# The stack's configuration keeps the default metrics_allow
# (127.0.0.1,::1), so another loopback source address is rejected.
status=$(curl -s -o /dev/null -w '%{http_code}' --max-time "$FA_CLIENT_TIMEOUT" \
	--interface 127.0.0.77 "$FLEETAUTH_URL/metrics") || status=000
fa_expect_eq "$status" 403 "GET /metrics from 127.0.0.77"

echo "PASS: $(basename "$0")"
