/* "audit" command group: read and follow the audit trail. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

#define CTL_AUDIT_PAGE "200"  /* events requested per poll */
#define CTL_MAX_INTERVAL 3600 /* seconds between polls */
#define CTL_MAX_SKIP_PAGES 10000

static const struct ctl_column audit_columns[] = {
        {"ID", "id"},           {"AT", "at"},         {"ACTOR", "actor"},
        {"ACTION", "action"},   {"TARGET", "target"}, {"OUTCOME", "outcome"},
        {"ADDRESS", "address"}, {NULL, NULL},
};

static volatile sig_atomic_t interrupted;

static void on_interrupt(int signo)
{
	(void)signo;
	interrupted = 1;
}

static int audit_list(struct ctl *ctl, const struct ctl_args *args)
{
	const char *pairs[] = {"after", ctl_arg(ctl, "after"), "limit",
	                       ctl_arg(ctl, "limit"), NULL};
	char path[300];
	long number;

	(void)args;
	if ((pairs[1] != NULL &&
	     !ctl_parse_long(ctl, "--after", pairs[1], 0, LONG_MAX, &number)) ||
	    (pairs[3] != NULL &&
	     !ctl_parse_long(ctl, "--limit", pairs[3], 1, 100000, &number)))
		return CTL_EXIT_USAGE;
	if (!ctl_build_query(path, sizeof(path), "/v1/audit", pairs)) {
		ctl_error(ctl, "query too long");
		return CTL_EXIT_USAGE;
	}
	return ctl_list(ctl, path, audit_columns);
}

/* Reads an event id that the service sends as a number or a string. */
static bool event_id(const cJSON *event, char *out, size_t out_size)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(event, "id");

	if (cJSON_IsNumber(id)) {
		snprintf(out, out_size, "%lld", (long long)id->valuedouble);
		return true;
	}
	if (cJSON_IsString(id) && strlen(id->valuestring) < out_size &&
	    strspn(id->valuestring, "0123456789") == strlen(id->valuestring) &&
	    id->valuestring[0] != '\0') {
		snprintf(out, out_size, "%s", id->valuestring);
		return true;
	}
	return false;
}

/* Fetches the events after cursor; *page gets the response. */
static bool fetch_after(struct ctl *ctl, const char *cursor, cJSON **page)
{
	const char *pairs[] = {"after", cursor, "limit", CTL_AUDIT_PAGE, NULL};
	char path[200];

	if (!ctl_build_query(path, sizeof(path), "/v1/audit", pairs))
		return false;
	return ctl_call(ctl, "GET", path, NULL, CTL_AUTH_REQUIRED, page);
}

/*
 * Finds the id of the newest event by paging through the trail, so that
 * "follow" without --after shows only new events.
 * NOTE: this reads the whole trail, one request per CTL_AUDIT_PAGE events,
 * because GET /v1/audit has no newest-first order. On a long trail pass
 * --after instead.
 */
static bool find_newest(struct ctl *ctl, char *cursor, size_t cursor_size)
{
	for (int pages = 0; pages < CTL_MAX_SKIP_PAGES && !interrupted;
	     pages++) {
		cJSON *page = NULL;
		const cJSON *items;
		int count;

		if (!fetch_after(ctl, cursor, &page))
			return false;
		items = ctl_items(page);
		count = cJSON_GetArraySize(items);
		if (count > 0 && !event_id(cJSON_GetArrayItem(items, count - 1),
		                           cursor, cursor_size)) {
			ctl_error(ctl, "audit event without a numeric id");
			cJSON_Delete(page);
			return false;
		}
		cJSON_Delete(page);
		if (count == 0)
			return true;
	}
	return !interrupted;
}

static void print_event(struct ctl *ctl, const cJSON *event)
{
	char text[1024];

	if (ctl->settings.json) {
		char *line = cJSON_PrintUnformatted(event);

		if (line != NULL)
			printf("%s\n", line);
		free(line);
	} else {
		for (int c = 0; audit_columns[c].key != NULL; c++) {
			ctl_value_text(cJSON_GetObjectItemCaseSensitive(
			                       event, audit_columns[c].key),
			               text, sizeof(text));
			printf("%s%s", c ? "  " : "", text);
		}
		putchar('\n');
	}
	/* Shows each event as it arrives; main reports a failed write at
	 * exit through ferror(stdout). */
	(void)fflush(stdout);
}

/* Prints the events of one page, advancing cursor; counts printed events
 * and stops at limit (0: no limit). */
static bool print_page(struct ctl *ctl, const cJSON *page, char *cursor,
                       size_t cursor_size, long *printed, long limit)
{
	const cJSON *event;

	cJSON_ArrayForEach(event, ctl_items(page))
	{
		if (!event_id(event, cursor, cursor_size)) {
			ctl_error(ctl, "audit event without a numeric id");
			return false;
		}
		print_event(ctl, event);
		(*printed)++;
		if (limit > 0 && *printed >= limit)
			break;
	}
	return true;
}

/* Sleeps for seconds unless interrupted first. */
static void pause_for(long seconds)
{
	struct timespec delay = {seconds, 0};

	while (!interrupted && nanosleep(&delay, &delay) != 0 && errno == EINTR)
		;
}

static int audit_follow(struct ctl *ctl, const struct ctl_args *args)
{
	const char *after = ctl_arg(ctl, "after");
	long after_value = 0;
	long count = 0;
	long interval = 1;
	long wait = 0;
	long printed = 0;
	char cursor[32] = "0";
	struct sigaction action;
	time_t deadline;

	(void)args;
	if ((after != NULL && !ctl_parse_long(ctl, "--after", after, 0,
	                                      LONG_MAX, &after_value)) ||
	    (ctl_arg(ctl, "count") != NULL &&
	     !ctl_parse_long(ctl, "--count", ctl_arg(ctl, "count"), 1, 1000000,
	                     &count)) ||
	    (ctl_arg(ctl, "interval") != NULL &&
	     !ctl_parse_long(ctl, "--interval", ctl_arg(ctl, "interval"), 1,
	                     CTL_MAX_INTERVAL, &interval)) ||
	    (ctl_arg(ctl, "wait") != NULL &&
	     !ctl_parse_long(ctl, "--wait", ctl_arg(ctl, "wait"), 1, 86400,
	                     &wait)))
		return CTL_EXIT_USAGE;
	memset(&action, 0, sizeof(action));
	action.sa_handler = on_interrupt; /* no SA_RESTART: wake nanosleep */
	sigaction(SIGINT, &action, NULL);
	sigaction(SIGTERM, &action, NULL);
	if (after != NULL)
		snprintf(cursor, sizeof(cursor), "%s", after);
	else if (!find_newest(ctl, cursor, sizeof(cursor)))
		return interrupted ? CTL_EXIT_OK : CTL_EXIT_FAILURE;
	deadline = time(NULL) + wait;
	while (!interrupted) {
		cJSON *page = NULL;
		bool ok;

		if (!fetch_after(ctl, cursor, &page))
			return CTL_EXIT_FAILURE;
		ok = print_page(ctl, page, cursor, sizeof(cursor), &printed,
		                count);
		cJSON_Delete(page);
		if (!ok)
			return CTL_EXIT_FAILURE;
		if (count > 0 && printed >= count)
			return CTL_EXIT_OK;
		if (wait > 0 && time(NULL) >= deadline) {
			ctl_error(ctl, "%ld of %ld events arrived within %ld s",
			          printed, count, wait);
			return CTL_EXIT_FAILURE;
		}
		pause_for(interval);
	}
	return CTL_EXIT_OK;
}

static const struct ctl_option list_options[] = {
        {"after", "ID", "only events with an id above ID"},
        {"limit", "N", "at most N events per page; the service caps N"},
        {NULL, NULL, NULL},
};

static const struct ctl_option follow_options[] = {
        {"after", "ID",
         "start after event ID (default: after the newest event, so only "
         "new events are shown)"},
        {"count", "N", "exit after printing N events"},
        {"interval", "SECONDS", "pause between polls, 1 to 3600 (default 1)"},
        {"wait", "SECONDS",
         "give up after SECONDS with exit status 1 when --count events have "
         "not arrived (default: wait until interrupted)"},
        {NULL, NULL, NULL},
};

static const struct ctl_command audit_commands[] = {
        {"list", NULL, 0, 0, "List audit events, oldest first.", NULL,
         list_options, audit_list},
        {"follow", NULL, 0, 0,
         "Print new audit events as they arrive until interrupted.",
         "Polls the service once per --interval. With --json each event is "
         "printed as one JSON object per line.",
         follow_options, audit_follow},
        {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL},
};

const struct ctl_group ctl_group_audit = {
        "audit", "Read and follow the audit trail.", audit_commands};
