/* "status": health of the service and a summary of what it manages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define CTL_COUNT_PAGES 100 /* pages read per count before giving up */

/* Probes a public endpoint; returns the status text and stores the JSON
 * result in out (under name). */
static bool probe(struct ctl *ctl, const char *path, const char *name,
                  cJSON *out)
{
	struct ctl_response resp;
	char err[400];
	char text[450];
	bool ok;

	if (ctl_http(ctl, "GET", path, NULL, CTL_AUTH_NONE, &resp, err,
	             sizeof(err)) != FA_OK) {
		cJSON_AddStringToObject(out, name, err);
		if (!ctl->settings.json)
			printf("%-12s %s\n", name, err);
		return false;
	}
	ok = resp.status >= 200 && resp.status <= 299;
	if (ok)
		snprintf(text, sizeof(text), "ok (HTTP %ld)", resp.status);
	else
		ctl_render_problem(resp.status, resp.json, resp.retry_after,
		                   text, sizeof(text));
	cJSON_AddStringToObject(out, name, text);
	if (!ctl->settings.json)
		printf("%-12s %s\n", name, text);
	ctl_response_free(&resp);
	return ok;
}

/* GETs path with credentials without printing errors; *json is NULL when
 * the call failed and why is filled. */
static cJSON *quiet_get(struct ctl *ctl, const char *path, char *why,
                        size_t why_size)
{
	struct ctl_response resp;
	cJSON *json = NULL;

	if (ctl_http(ctl, "GET", path, NULL, CTL_AUTH_REQUIRED, &resp, why,
	             why_size) != FA_OK)
		return NULL;
	if (resp.status >= 200 && resp.status <= 299 && resp.json != NULL) {
		json = resp.json;
		resp.json = NULL;
	} else {
		ctl_render_problem(resp.status, resp.json, resp.retry_after,
		                   why, why_size);
	}
	ctl_response_free(&resp);
	return json;
}

static const char *text_or(const char *text, const char *fallback)
{
	return text != NULL ? text : fallback;
}

/* Describes the current signing key, for example "k-2026 (RS256)". */
static void signing_key_summary(struct ctl *ctl, cJSON *out)
{
	char text[460] = "";
	char why[400];
	const cJSON *key;
	cJSON *json = quiet_get(ctl, "/v1/signing-keys", why, sizeof(why));
	int previous = 0;

	cJSON_ArrayForEach(key, ctl_items(json))
	{
		const char *status = ctl_json_str(key, "status");

		if (status != NULL && strcmp(status, "current") == 0)
			snprintf(text, sizeof(text), "%.64s (%.8s)",
			         text_or(ctl_json_str(key, "kid"), "?"),
			         text_or(ctl_json_str(key, "alg"), "?"));
		else if (status != NULL && strcmp(status, "previous") == 0)
			previous++;
	}
	if (json == NULL)
		snprintf(text, sizeof(text), "not available: %s", why);
	else if (text[0] == '\0')
		snprintf(text, sizeof(text), "none current");
	else if (previous > 0)
		snprintf(text + strlen(text), sizeof(text) - strlen(text),
		         ", %d previous still published", previous);
	cJSON_Delete(json);
	cJSON_AddStringToObject(out, "signing_key", text);
	if (!ctl->settings.json)
		printf("%-12s %s\n", "signing key", text);
}

/*
 * Counts the items of a list endpoint by following its "next" cursors, at
 * most CTL_COUNT_PAGES pages.
 */
static void count_items(struct ctl *ctl, const char *path, const char *name,
                        cJSON *out)
{
	char cursor[256] = "";
	char page_path[512];
	char why[400];
	char text[450];
	long total = 0;
	int pages = 0;

	for (; pages < CTL_COUNT_PAGES; pages++) {
		const char *pairs[] = {"after", cursor[0] ? cursor : NULL,
		                       NULL};
		const char *next;
		cJSON *json;

		if (!ctl_build_query(page_path, sizeof(page_path), path, pairs))
			break;
		json = quiet_get(ctl, page_path, why, sizeof(why));
		if (json == NULL) {
			snprintf(text, sizeof(text), "not available: %s", why);
			goto done;
		}
		total += cJSON_GetArraySize(ctl_items(json));
		next = ctl_json_str(json, "next");
		if (next == NULL || next[0] == '\0' ||
		    strlen(next) >= sizeof(cursor)) {
			cJSON_Delete(json);
			break;
		}
		snprintf(cursor, sizeof(cursor), "%s", next);
		cJSON_Delete(json);
	}
	snprintf(text, sizeof(text), "%s%ld",
	         pages == CTL_COUNT_PAGES ? "more than " : "", total);
done:
	cJSON_AddStringToObject(out, name, text);
	if (!ctl->settings.json)
		printf("%-12s %s\n", name, text);
}

static int status_run(struct ctl *ctl, const struct ctl_args *args)
{
	cJSON *out = cJSON_CreateObject();
	bool healthy;
	bool ready;
	const char *brokers = "not available: fleetauthd does not report "
	                      "broker connections";

	(void)args;
	if (out == NULL) {
		ctl_error(ctl, "out of memory");
		return CTL_EXIT_FAILURE;
	}
	if (ctl->settings.url == NULL) {
		ctl_error(ctl, "no service URL: pass --url or set "
		               "FLEETAUTH_URL");
		cJSON_Delete(out);
		return CTL_EXIT_FAILURE;
	}
	cJSON_AddStringToObject(out, "service", ctl->settings.url);
	if (!ctl->settings.json)
		printf("%-12s %s\n", "service", ctl->settings.url);
	healthy = probe(ctl, "/healthz", "healthz", out);
	ready = healthy && probe(ctl, "/readyz", "readyz", out);
	if (ready) {
		signing_key_summary(ctl, out);
		count_items(ctl, "/v1/carriers", "carriers", out);
		count_items(ctl, "/v1/users", "users", out);
		count_items(ctl, "/v1/devices", "devices", out);
		count_items(ctl, "/v1/loads", "loads", out);
	}
	cJSON_AddStringToObject(out, "brokers", brokers);
	if (ctl->settings.json)
		ctl_print_json(out);
	else
		printf("%-12s %s\n", "brokers", brokers);
	cJSON_Delete(out);
	if (!ready) {
		ctl_error(ctl, "fleetauthd at %s is not %s", ctl->settings.url,
		          healthy ? "ready" : "healthy");
		return CTL_EXIT_FAILURE;
	}
	return CTL_EXIT_OK;
}

static const struct ctl_command status_commands[] = {
        {NULL, NULL, 0, 0,
         "Show whether fleetauthd is healthy and ready, the current signing "
         "key and how many carriers, users, devices and loads it manages.",
         "Counts and the signing key need credentials; without them those "
         "lines say \"not available\". Exits with status 1 when the service "
         "is unreachable or not ready.",
         NULL, status_run},
        {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL},
};

const struct ctl_group ctl_group_status = {
        "status", "Service health and a summary.", status_commands};
