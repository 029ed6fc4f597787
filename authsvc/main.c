/*
 * fleetauthd entry point: parses the command line, loads the configuration
 * and runs one command (serve, migrate, bootstrap, check-config, or the
 * signing-key and ca commands of the auth and device modules).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "signing_keys.h"

/* Present only when the auth and device modules are built in. */
/* NOLINTBEGIN(readability-redundant-declaration): these add the weak
 * attribute to the declarations in service.h. */
extern int fa_cmd_signing_key(struct fa_service *svc, int argc, char **argv)
        __attribute__((weak));
extern int fa_cmd_ca(struct fa_service *svc, int argc, char **argv)
        __attribute__((weak));
/* NOLINTEND(readability-redundant-declaration) */

/* Prints every route (routes_cmd.c) without reading the configuration. */
int fa_cmd_routes(int argc, char **argv);

static void print_usage(FILE *out)
{
	fprintf(out,
	        "usage: fleetauthd [-c FILE] [COMMAND [ARGS]]\n"
	        "\n"
	        "options:\n"
	        "  -c FILE       configuration file (default %s; skipped when "
	        "absent and -c is not given)\n"
	        "  -h, --help    show this help\n"
	        "\n"
	        "commands:\n"
	        "  serve                 run the HTTP service (default)\n"
	        "  migrate               apply pending schema migrations\n"
	        "  bootstrap --name NAME [--expires-days N]\n"
	        "                        create a system_admin API key and "
	        "print it once\n"
	        "  check-config          load the configuration and keys, "
	        "then exit\n"
	        "  routes [--long]       print every HTTP route as METHOD "
	        "PATTERN, sorted;\n"
	        "                        --long adds the API-key scope and "
	        "public/credential\n"
	        "  signing-key ...       import or generate token signing "
	        "keys\n"
	        "  ca ...                create or import the fleet CA\n"
	        "  kek status|rewrap     count secrets per key-encryption "
	        "key, or re-encrypt\n"
	        "                        them under the current kek_id\n",
	        FA_DEFAULT_CONFIG_PATH);
	fprintf(out, "\nconfiguration options (environment FLEETAUTHD_<NAME> "
	             "overrides the file):\n");
	if (out == stdout)
		fa_config_print_help();
}

/* True when the command needs the key-encryption keys. */
static bool command_needs_kek(const char *command)
{
	return strcmp(command, "serve") == 0 ||
	       strcmp(command, "check-config") == 0 ||
	       strcmp(command, "signing-key") == 0 ||
	       strcmp(command, "ca") == 0 || strcmp(command, "kek") == 0;
}

/*
 * Opens the current token-signing key once, so that a kek_file that is not
 * the key the secrets were sealed with stops the start instead of failing
 * every login. A database without a signing key only warns: the first key
 * may be imported after the service starts.
 */
static bool signing_key_opens(struct fa_service *svc, PGconn *db)
{
	char kid[FA_ID_MAX + 1] = "";
	fa_result result;

	result = fa_signing_key_check(svc, db, kid);
	if (result == FA_ERR_NOT_FOUND) {
		fa_log(FA_LOG_WARNING, NULL,
		       "no current signing key: logins fail until one is "
		       "added with fleetauthd signing-key import or generate");
		return true;
	}
	if (result == FA_ERR_CRYPTO) {
		fprintf(stderr,
		        "fleetauthd: the current signing key %s does not open "
		        "with kek_id %s from kek_file %s or any kek_previous "
		        "key; configure the key that sealed it\n",
		        kid[0] != '\0' ? kid : "(unknown kid)",
		        svc->config.kek_id, svc->config.kek_file);
		return false;
	}
	if (result != FA_OK) {
		fprintf(stderr,
		        "fleetauthd: reading the current signing key failed: "
		        "%s\n",
		        fa_result_str(result));
		return false;
	}
	return true;
}

/* Connects to the database before serving, so that a wrong database_url
 * fails at start rather than on the first request. */
static int serve(struct fa_service *svc)
{
	PGconn *db = NULL;
	long long version = 0;

	if (fa_db_connect(svc, &db) != FA_OK) {
		fprintf(stderr,
		        "fleetauthd: cannot connect to database_url; check "
		        "that PostgreSQL runs and the URL is right\n");
		return 1;
	}
	if (fa_schema_version(db, &version) == FA_OK &&
	    version != FLEETAUTH_SCHEMA_VERSION)
		fa_log(FA_LOG_WARNING, NULL,
		       "database schema version %lld, expected %d: /readyz "
		       "fails until fleetauthd migrate runs",
		       version, FLEETAUTH_SCHEMA_VERSION);
	if (!signing_key_opens(svc, db)) {
		PQfinish(db);
		return 1;
	}
	PQfinish(db);
	return fa_http_serve(svc);
}

static int run_module(struct fa_service *svc, const char *command, int argc,
                      char **argv)
{
	int (*entry)(struct fa_service *, int, char **) =
	        strcmp(command, "ca") == 0 ? fa_cmd_ca : fa_cmd_signing_key;

	if (entry == NULL) {
		fprintf(stderr,
		        "fleetauthd: command \"%s\" is not available: this "
		        "build lacks the module that provides it\n",
		        command);
		return 2;
	}
	return entry(svc, argc, argv);
}

static int run_command(struct fa_service *svc, const char *command, int argc,
                       char **argv)
{
	if (strcmp(command, "serve") == 0)
		return serve(svc);
	if (strcmp(command, "migrate") == 0)
		return fa_cmd_migrate(svc);
	if (strcmp(command, "bootstrap") == 0)
		return fa_cmd_bootstrap(svc, argc, argv);
	if (strcmp(command, "kek") == 0)
		return fa_cmd_kek(svc, argc, argv);
	if (strcmp(command, "check-config") == 0) {
		printf("configuration %s is valid\n",
		       svc->config_path != NULL ? svc->config_path
		                                : "(environment only)");
		return 0;
	}
	return run_module(svc, command, argc, argv);
}

static bool command_known(const char *command)
{
	static const char *const commands[] = {
	        "serve",        "migrate",     "bootstrap",
	        "check-config", "signing-key", "ca",
	        "kek",          "routes",      NULL};
	size_t i;

	for (i = 0; commands[i] != NULL; i++) {
		if (strcmp(command, commands[i]) == 0)
			return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	struct fa_service svc;
	const char *config_path = NULL;
	const char *command = "serve";
	char err[512];
	int first = 1;
	int status;

	while (first < argc && argv[first][0] == '-') {
		if (strcmp(argv[first], "-h") == 0 ||
		    strcmp(argv[first], "--help") == 0) {
			print_usage(stdout);
			return 0;
		}
		if (strcmp(argv[first], "-c") == 0 && first + 1 < argc) {
			config_path = argv[first + 1];
			first += 2;
			continue;
		}
		fprintf(stderr, "fleetauthd: unknown option %s\n", argv[first]);
		print_usage(stderr);
		return 2;
	}
	if (first < argc)
		command = argv[first];
	if (!command_known(command)) {
		fprintf(stderr, "fleetauthd: unknown command \"%s\"\n",
		        command);
		print_usage(stderr);
		return 2;
	}
	if (strcmp(command, "routes") == 0)
		return fa_cmd_routes(argc - first, argv + first);
	err[0] = '\0';
	if (fa_service_init(&svc, config_path, command_needs_kek(command), err,
	                    sizeof(err)) != FA_OK) {
		fprintf(stderr, "fleetauthd: %s\n", err);
		fa_service_cleanup(&svc);
		return 1;
	}
	status = run_command(&svc, command, argc - first < 1 ? 1 : argc - first,
	                     first < argc ? argv + first : argv);
	fa_service_cleanup(&svc);
	return status;
}
