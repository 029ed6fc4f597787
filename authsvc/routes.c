/* Route tables of every module and matching of "/v1/users/{id}" patterns
 * against request paths. */
#include <stdio.h>
#include <string.h>

#include "core.h"
#include "metrics.h"

/* The auth and device modules may be missing from a build; their tables
 * are then NULL and skipped. */
/* NOLINTBEGIN(readability-redundant-declaration): these add the weak
 * attribute to the declarations in service.h. */
extern const struct fa_route fa_auth_routes[] __attribute__((weak));
extern const struct fa_route fa_device_routes[] __attribute__((weak));
/* NOLINTEND(readability-redundant-declaration) */

/* Routes of the core: carriers, users, loads, audit and health. */
const struct fa_route fa_core_routes[] = {
        {"GET", "/healthz", fa_health_live, FA_ROUTE_PUBLIC | FA_ROUTE_NO_DB,
         NULL},
        {"GET", "/readyz", fa_health_ready, FA_ROUTE_PUBLIC | FA_ROUTE_NO_DB,
         NULL},
        /* Public for the router, but metrics.c checks metrics_allow. */
        {"GET", "/metrics", fa_metrics_serve, FA_ROUTE_PUBLIC | FA_ROUTE_NO_DB,
         NULL},
        {"POST", "/v1/carriers", fa_carriers_create, FA_ROUTE_BODY,
         "carriers:write"},
        {"GET", "/v1/carriers", fa_carriers_list, 0, "carriers:read"},
        {"GET", "/v1/carriers/{id}", fa_carriers_get, 0, "carriers:read"},
        {"POST", "/v1/users", fa_users_create, FA_ROUTE_BODY, "users:write"},
        {"GET", "/v1/users", fa_users_list, 0, "users:read"},
        {"GET", "/v1/users/{id}", fa_users_get, 0, "users:read"},
        {"PATCH", "/v1/users/{id}", fa_users_update, FA_ROUTE_BODY,
         "users:write"},
        {"DELETE", "/v1/users/{id}", fa_users_delete, 0, "users:write"},
        {"POST", "/v1/users/{id}/revoke-sessions", fa_users_revoke_sessions,
         FA_ROUTE_BODY_OPTIONAL, "users:write"},
        {"GET", "/v1/users/{id}/export", fa_users_export, 0, "users:read"},
        {"POST", "/v1/users/{id}/erase", fa_users_erase, FA_ROUTE_BODY_OPTIONAL,
         "users:write"},
        {"POST", "/v1/loads", fa_loads_create, FA_ROUTE_BODY, "loads:write"},
        {"GET", "/v1/loads", fa_loads_list, 0, "loads:read"},
        {"PUT", "/v1/loads/{id}/assignment", fa_loads_assign, FA_ROUTE_BODY,
         "loads:write"},
        {"DELETE", "/v1/loads/{id}/assignment", fa_loads_unassign, 0,
         "loads:write"},
        {"GET", "/v1/audit", fa_audit_list, 0, "audit:read"},
        {NULL, NULL, NULL, 0, NULL},
};

/* Compares one path segment (up to '/' or the end) with a literal. */
static bool segment_equals(const char *segment, size_t len, const char *literal,
                           size_t literal_len)
{
	return len == literal_len && memcmp(segment, literal, len) == 0;
}

/*
 * Matches path against pattern segment by segment. {name} segments must be
 * valid identifiers; their start offsets go into offsets. Returns true on a
 * match and sets *count to the number of parameters.
 */
static bool pattern_matches(const char *pattern, const char *path,
                            size_t offsets[FA_PARAMS_MAX],
                            size_t lengths[FA_PARAMS_MAX], size_t *count)
{
	const char *p = pattern;
	const char *s = path;

	*count = 0;
	while (*p != '\0' && *s != '\0') {
		size_t plen = strcspn(p, "/");
		size_t slen = strcspn(s, "/");

		if (p[0] == '{') {
			if (*count == FA_PARAMS_MAX || !fa_id_valid_n(s, slen))
				return false;
			offsets[*count] = (size_t)(s - path);
			lengths[*count] = slen;
			(*count)++;
		} else if (!segment_equals(s, slen, p, plen)) {
			return false;
		}
		p += plen;
		s += slen;
		if (*p != *s)
			return false;
		if (*p == '/') {
			p++;
			s++;
		}
	}
	return *p == '\0' && *s == '\0';
}

static const struct fa_route *search_table(const struct fa_route *table,
                                           const char *method, const char *path,
                                           size_t offsets[FA_PARAMS_MAX],
                                           size_t lengths[FA_PARAMS_MAX],
                                           size_t *count, bool *path_known)
{
	const struct fa_route *route;

	if (table == NULL)
		return NULL;
	for (route = table; route->method != NULL; route++) {
		if (!pattern_matches(route->pattern, path, offsets, lengths,
		                     count))
			continue;
		if (strcmp(route->method, method) == 0)
			return route;
		*path_known = true;
	}
	return NULL;
}

const struct fa_route *fa_route_find(const char *method, char *path_copy,
                                     const char *params[FA_PARAMS_MAX],
                                     bool *path_known)
{
	const struct fa_route *tables[3];
	const struct fa_route *route = NULL;
	size_t offsets[FA_PARAMS_MAX];
	size_t lengths[FA_PARAMS_MAX];
	size_t count = 0;
	size_t i;

	tables[0] = fa_core_routes;
	tables[1] = fa_auth_routes;
	tables[2] = fa_device_routes;
	*path_known = false;
	for (i = 0; i < 3 && route == NULL; i++)
		route = search_table(tables[i], method, path_copy, offsets,
		                     lengths, &count, path_known);
	if (route == NULL)
		return NULL;
	/* Cut the copy into NUL-terminated parameter strings. */
	for (i = 0; i < count; i++) {
		path_copy[offsets[i] + lengths[i]] = '\0';
		params[i] = path_copy + offsets[i];
	}
	return route;
}

void fa_route_allowed_methods(const char *path, char *out, size_t out_size)
{
	const struct fa_route *tables[3];
	const struct fa_route *route;
	size_t offsets[FA_PARAMS_MAX];
	size_t lengths[FA_PARAMS_MAX];
	size_t count;
	size_t used = 0;
	size_t i;

	tables[0] = fa_core_routes;
	tables[1] = fa_auth_routes;
	tables[2] = fa_device_routes;
	out[0] = '\0';
	for (i = 0; i < 3; i++) {
		if (tables[i] == NULL)
			continue;
		for (route = tables[i]; route->method != NULL; route++) {
			if (!pattern_matches(route->pattern, path, offsets,
			                     lengths, &count))
				continue;
			used += (size_t)snprintf(out + used, out_size - used,
			                         "%s%s", used > 0 ? ", " : "",
			                         route->method);
			if (used >= out_size)
				return;
		}
	}
}
