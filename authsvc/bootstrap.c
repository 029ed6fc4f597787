/*
 * "fleetauthd bootstrap --name NAME [--expires-days N]": creates the first
 * API key (role system_admin, scope *), prints its secret once on stdout
 * and stores only its SHA-256.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

#define BOOTSTRAP_DEFAULT_DAYS 90
#define BOOTSTRAP_MAX_DAYS 365
#define KEY_RANDOM_BYTES 32
#define KEY_PREFIX_LEN 8 /* "fak_" and four characters of the secret */

struct bootstrap_args {
	const char *name;
	long days;
};

static int usage_error(const char *message)
{
	fprintf(stderr,
	        "fleetauthd bootstrap: %s\n"
	        "usage: fleetauthd bootstrap --name NAME [--expires-days N]\n",
	        message);
	return 2;
}

static bool name_valid(const char *name)
{
	size_t len = strlen(name);
	size_t i;

	if (len == 0 || len > 200)
		return false;
	for (i = 0; i < len; i++) {
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return false;
	}
	return true;
}

static int parse_args(int argc, char **argv, struct bootstrap_args *args)
{
	int i;
	char *end = NULL;

	args->name = NULL;
	args->days = BOOTSTRAP_DEFAULT_DAYS;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
			args->name = argv[++i];
		} else if (strcmp(argv[i], "--expires-days") == 0 &&
		           i + 1 < argc) {
			args->days = strtol(argv[++i], &end, 10);
			if (*end != '\0' || args->days < 1 ||
			    args->days > BOOTSTRAP_MAX_DAYS)
				return usage_error("invalid --expires-days: "
				                   "use 1 to 365");
		} else {
			return usage_error("unknown or incomplete option");
		}
	}
	if (args->name == NULL)
		return usage_error("missing --name");
	if (!name_valid(args->name))
		return usage_error("invalid --name: use 1 to 200 characters "
		                   "without control characters");
	return 0;
}

/* Builds a new secret and key id. */
static fa_result new_key(char *secret, size_t secret_size, char *id,
                         size_t id_size)
{
	uint8_t random[KEY_RANDOM_BYTES];
	uint8_t id_random[6];
	char id_hex[2 * sizeof(id_random) + 1];
	fa_result result;

	result = fa_random_bytes(random, sizeof(random));
	if (result != FA_OK)
		return result;
	result = fa_random_bytes(id_random, sizeof(id_random));
	if (result != FA_OK)
		goto out;
	memcpy(secret, "fak_", 4);
	if (fa_b64url_encode(random, sizeof(random), secret + 4,
	                     secret_size - 4) == 0) {
		result = FA_ERR_TOO_LARGE;
		goto out;
	}
	fa_hex_encode(id_random, sizeof(id_random), id_hex);
	snprintf(id, id_size, "bootstrap-%s", id_hex);
out:
	fa_wipe(random, sizeof(random));
	return result;
}

static fa_result store_key(PGconn *db, const char *id, const char *name,
                           const char *secret, long days)
{
	uint8_t hash[FA_SHA256_LEN];
	char hash_hex[2 * FA_SHA256_LEN + 1];
	char prefix[KEY_PREFIX_LEN + 1];
	char days_text[16];
	const char *params[5];
	cJSON *detail = NULL;
	fa_result result;

	fa_sha256(secret, strlen(secret), hash);
	fa_hex_encode(hash, sizeof(hash), hash_hex);
	snprintf(prefix, sizeof(prefix), "%s", secret);
	snprintf(days_text, sizeof(days_text), "%ld", days);
	params[0] = id;
	params[1] = name;
	params[2] = prefix;
	params[3] = hash_hex;
	params[4] = days_text;
	result = fa_db_begin(db);
	if (result != FA_OK)
		return result;
	result = fa_db_command(
	        db,
	        "INSERT INTO api_keys (id, name, key_prefix, key_hash, role, "
	        "scopes, created_by, expires_at) VALUES ($1, $2, $3, "
	        "decode($4, 'hex'), 'system_admin', ARRAY['*'], 'bootstrap', "
	        "now() + make_interval(days => $5::int))",
	        5, params);
	if (result != FA_OK)
		goto out;
	detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "name", name);
	cJSON_AddStringToObject(detail, "role", "system_admin");
	cJSON_AddNumberToObject(detail, "expires_days", (double)days);
	result = fa_audit_record(db, "bootstrap", "api_key.create", id,
	                         "success", NULL, NULL, detail);
	if (result != FA_OK)
		goto out;
	result = fa_db_commit(db);
out:
	cJSON_Delete(detail);
	fa_db_rollback(db);
	return result;
}

int fa_cmd_bootstrap(struct fa_service *svc, int argc, char **argv)
{
	struct bootstrap_args args;
	char secret[64];
	char id[FA_ID_MAX + 1];
	PGconn *db = NULL;
	fa_result result;
	int status;

	status = parse_args(argc, argv, &args);
	if (status != 0)
		return status;
	result = fa_db_connect(svc, &db);
	if (result != FA_OK) {
		fprintf(stderr, "fleetauthd bootstrap: cannot connect to "
		                "database_url; check that PostgreSQL runs\n");
		return 1;
	}
	result = new_key(secret, sizeof(secret), id, sizeof(id));
	if (result == FA_OK)
		result = store_key(db, id, args.name, secret, args.days);
	PQfinish(db);
	if (result != FA_OK) {
		fa_wipe(secret, sizeof(secret));
		fprintf(stderr,
		        "fleetauthd bootstrap: cannot store the API key: %s; "
		        "run fleetauthd migrate first\n",
		        fa_result_str(result));
		return 1;
	}
	fprintf(stderr,
	        "fleetauthd bootstrap: created API key %s (system_admin, "
	        "expires in %ld days); the secret follows on stdout and is "
	        "shown only once\n",
	        id, args.days);
	printf("%s\n", secret);
	fa_wipe(secret, sizeof(secret));
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr,
		        "fleetauthd bootstrap: writing the secret to stdout "
		        "failed, so it is lost; revoke API key %s and run "
		        "bootstrap again\n",
		        id);
		return 1;
	}
	return 0;
}
