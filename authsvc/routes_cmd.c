/*
 * "fleetauthd routes [--long]": prints every route of the route tables
 * linked into this binary as "METHOD PATTERN", one per line, sorted by
 * pattern and then method. --long appends the API-key scope and "public"
 * or "credential". The scope is "-" when the route has none, so a public
 * route needs no credential and any other route accepts only API keys with
 * the scope "*". The command reads no configuration and opens no database.
 * tests/integration/api/test_openapi.sh compares this list with
 * docs/openapi.yaml.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* A build without the auth or device module has a NULL table for it, which
 * is skipped as in routes.c. */
/* NOLINTBEGIN(readability-redundant-declaration): these add the weak
 * attribute to the declarations in service.h. */
extern const struct fa_route fa_auth_routes[] __attribute__((weak));
extern const struct fa_route fa_device_routes[] __attribute__((weak));
/* NOLINTEND(readability-redundant-declaration) */

/* Orders routes by pattern, then by method. */
static int compare_routes(const void *a, const void *b)
{
	const struct fa_route *left = *(const struct fa_route *const *)a;
	const struct fa_route *right = *(const struct fa_route *const *)b;
	int order = strcmp(left->pattern, right->pattern);

	return order != 0 ? order : strcmp(left->method, right->method);
}

static size_t count_routes(const struct fa_route *table)
{
	size_t count = 0;

	if (table == NULL)
		return 0;
	while (table[count].method != NULL)
		count++;
	return count;
}

static void print_route(const struct fa_route *route, bool long_format)
{
	if (!long_format) {
		printf("%s %s\n", route->method, route->pattern);
		return;
	}
	printf("%s %s %s %s\n", route->method, route->pattern,
	       route->scope != NULL ? route->scope : "-",
	       (route->flags & FA_ROUTE_PUBLIC) != 0 ? "public" : "credential");
}

/*
 * Prints the sorted route list to stdout. argv[0] is "routes". Returns the
 * process exit status: 0, 1 when memory runs out or stdout cannot be
 * written, 2 for an unknown argument.
 */
int fa_cmd_routes(int argc, char **argv)
{
	const struct fa_route *tables[3];
	const struct fa_route **routes = NULL;
	size_t total = 0;
	size_t used = 0;
	size_t i;
	size_t j;
	bool long_format = false;
	int status = 1;

	if (argc == 2 && strcmp(argv[1], "--long") == 0) {
		long_format = true;
	} else if (argc != 1) {
		fprintf(stderr, "fleetauthd: invalid arguments for routes; "
		                "usage: fleetauthd routes [--long]\n");
		return 2;
	}
	tables[0] = fa_core_routes;
	tables[1] = fa_auth_routes;
	tables[2] = fa_device_routes;
	for (i = 0; i < 3; i++)
		total += count_routes(tables[i]);
	routes = calloc(total > 0 ? total : 1, sizeof(const struct fa_route *));
	if (routes == NULL) {
		fprintf(stderr, "fleetauthd: out of memory listing routes\n");
		goto out;
	}
	for (i = 0; i < 3; i++) {
		for (j = 0; j < count_routes(tables[i]); j++)
			routes[used++] = &tables[i][j];
	}
	qsort(routes, used, sizeof(const struct fa_route *), compare_routes);
	for (i = 0; i < used; i++)
		print_route(routes[i], long_format);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "fleetauthd: failed to write the route list "
		                "to stdout\n");
		goto out;
	}
	status = 0;
out:
	free(routes);
	return status;
}
