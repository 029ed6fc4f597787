/* Percentiles and the text and JSON reports of fleetauth-loadgen. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "loadgen.h"

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double quantile(double *values, size_t count, double q)
{
	size_t rank;

	if (count == 0)
		return 0.0;
	qsort(values, count, sizeof(*values), compare_double);
	rank = (size_t)ceil(q * (double)count);
	if (rank == 0)
		rank = 1;
	if (rank > count)
		rank = count;
	return values[rank - 1];
}

void report_print_text(const struct report *report,
                       const struct counters *counters)
{
	printf("clients              %zu\n", report->clients);
	printf("connected            %" PRIu64 "\n", counters->connected);
	printf("refused              %" PRIu64 " (last reason code %d)\n",
	       counters->refused, counters->last_refusal_code);
	printf("failed               %" PRIu64 "\n", counters->failed);
	printf("dropped after CONNACK %" PRIu64 "\n", counters->dropped);
	printf("connect time         %.3f s\n", report->connect_seconds);
	printf("connect rate         %.1f connects/s\n", report->connect_rate);
	printf("connect latency      median %.2f ms, p99 %.2f ms, "
	       "max %.2f ms\n",
	       report->latency_median_ms, report->latency_p99_ms,
	       report->latency_max_ms);
	printf("subscriptions        %" PRIu64 " granted, %" PRIu64 " denied\n",
	       counters->sub_granted, counters->sub_denied);
	printf("hold                 %.3f s\n", report->hold_seconds);
	printf("published            %" PRIu64 " (%.1f msg/s), %" PRIu64
	       " acknowledged, %" PRIu64 " denied\n",
	       counters->published, report->publish_rate, counters->pub_acked,
	       counters->pub_denied);
	printf("delivered            %" PRIu64 " in hold (%.1f msg/s), %" PRIu64
	       " in total\n",
	       counters->received, report->delivery_rate,
	       counters->received_total);
	if (report->timed_out)
		printf("timed out            yes\n");
}

void report_print_json(const struct report *report,
                       const struct counters *counters)
{
	printf("{\"clients\":%zu,\"connected\":%" PRIu64 ",\"refused\":%" PRIu64
	       ",\"last_refusal_code\":%d"
	       ",\"failed\":%" PRIu64 ",\"dropped\":%" PRIu64
	       ",\"connect_seconds\":%.6f,\"connect_rate\":%.2f"
	       ",\"connect_latency_ms\":{\"median\":%.3f,\"p99\":%.3f"
	       ",\"max\":%.3f}"
	       ",\"subscriptions_granted\":%" PRIu64
	       ",\"subscriptions_denied\":%" PRIu64
	       ",\"hold_seconds\":%.6f,\"published\":%" PRIu64
	       ",\"publish_rate\":%.2f,\"publish_acknowledged\":%" PRIu64
	       ",\"publish_denied\":%" PRIu64 ",\"delivered\":%" PRIu64
	       ",\"delivered_total\":%" PRIu64
	       ",\"delivery_rate\":%.2f,\"timed_out\":%s}\n",
	       report->clients, counters->connected, counters->refused,
	       counters->last_refusal_code, counters->failed, counters->dropped,
	       report->connect_seconds, report->connect_rate,
	       report->latency_median_ms, report->latency_p99_ms,
	       report->latency_max_ms, counters->sub_granted,
	       counters->sub_denied, report->hold_seconds, counters->published,
	       report->publish_rate, counters->pub_acked, counters->pub_denied,
	       counters->received, counters->received_total,
	       report->delivery_rate, report->timed_out ? "true" : "false");
}
