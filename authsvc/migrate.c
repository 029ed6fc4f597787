/*
 * Schema migrations: schema/NNN_name.sql files applied in order, each in
 * one transaction together with its row in schema_migrations. An advisory
 * lock keeps two migrators from racing.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* Arbitrary constant shared by every fleetauthd migrator. */
#define MIGRATION_LOCK_KEY "7361221953034625"
#define MIGRATION_FILE_MAX ((size_t)4 * 1024 * 1024)

struct migration {
	int version;
	char name[256];
};

/* Parses "NNN_name.sql" with name of [a-z0-9_]; returns the version or -1. */
static int migration_version(const char *file)
{
	size_t len = strlen(file);
	size_t i;

	if (len < 9 || len >= sizeof(((struct migration *)0)->name) ||
	    strcmp(file + len - 4, ".sql") != 0 || file[3] != '_')
		return -1;
	for (i = 0; i < 3; i++) {
		if (file[i] < '0' || file[i] > '9')
			return -1;
	}
	for (i = 4; i < len - 4; i++) {
		char c = file[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return -1;
	}
	return (file[0] - '0') * 100 + (file[1] - '0') * 10 + (file[2] - '0');
}

/*
 * Lists the migrations of dir with versions 1 to FLEETAUTH_SCHEMA_VERSION,
 * indexed by version. Fails when a version is missing or duplicated.
 */
static fa_result list_migrations(const char *dir, struct migration *by_version)
{
	DIR *handle = opendir(dir);
	struct dirent *entry;
	int version;

	if (handle == NULL) {
		fprintf(stderr,
		        "fleetauthd: cannot open schema_dir %s: %s; set "
		        "schema_dir to the folder with the NNN_name.sql "
		        "files\n",
		        dir, strerror(errno));
		return FA_ERR_IO;
	}
	/* cppcheck-suppress readdirCalled ; readdir_r is deprecated, and
	 * readdir is thread-safe on a DIR stream that only this call uses. */
	while ((entry = readdir(handle)) != NULL) {
		version = migration_version(entry->d_name);
		if (version <= 0 || version > FLEETAUTH_SCHEMA_VERSION)
			continue;
		if (by_version[version].version != 0) {
			fprintf(stderr,
			        "fleetauthd: schema_dir %s has two files for "
			        "version %03d: %s and %s; remove one\n",
			        dir, version, by_version[version].name,
			        entry->d_name);
			closedir(handle);
			return FA_ERR_INVALID;
		}
		by_version[version].version = version;
		snprintf(by_version[version].name,
		         sizeof(by_version[version].name), "%s", entry->d_name);
	}
	closedir(handle);
	for (version = 1; version <= FLEETAUTH_SCHEMA_VERSION; version++) {
		if (by_version[version].version == 0) {
			fprintf(stderr,
			        "fleetauthd: schema_dir %s has no file for "
			        "version %03d; point schema_dir at the "
			        "schema files of this release\n",
			        dir, version);
			return FA_ERR_NOT_FOUND;
		}
	}
	return FA_OK;
}

static fa_result read_file(const char *path, char **text_out)
{
	FILE *file = fopen(path, "r");
	char *text = NULL;
	size_t len;
	fa_result result = FA_OK;

	*text_out = NULL;
	if (file == NULL) {
		fprintf(stderr, "fleetauthd: cannot read %s: %s\n", path,
		        strerror(errno));
		return FA_ERR_IO;
	}
	text = malloc(MIGRATION_FILE_MAX + 1);
	if (text == NULL) {
		result = FA_ERR_NOMEM;
		goto out;
	}
	len = fread(text, 1, MIGRATION_FILE_MAX + 1, file);
	if (ferror(file) || len > MIGRATION_FILE_MAX) {
		fprintf(stderr, "fleetauthd: cannot read %s: %s\n", path,
		        ferror(file) ? "read error" : "larger than 4 MiB");
		result = FA_ERR_IO;
		goto out;
	}
	text[len] = '\0';
	*text_out = text;
	text = NULL;
out:
	free(text);
	(void)fclose(file); /* opened for reading: nothing to flush */
	return result;
}

fa_result fa_schema_version(PGconn *db, long long *version)
{
	PGresult *res = NULL;
	fa_result result;
	const char *value;

	*version = 0;
	result = fa_db_exec(db, &res,
	                    "SELECT to_regclass('schema_migrations') IS NOT "
	                    "NULL",
	                    0, NULL);
	if (result != FA_OK)
		return result;
	value = fa_db_value(res, 0, 0);
	if (value == NULL || strcmp(value, "t") != 0) {
		PQclear(res);
		return FA_OK;
	}
	PQclear(res);
	result = fa_db_exec(db, &res,
	                    "SELECT coalesce(max(version), 0) FROM "
	                    "schema_migrations",
	                    0, NULL);
	if (result != FA_OK)
		return result;
	*version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return FA_OK;
}

/* Runs one migration file and records it, in one transaction. */
static fa_result apply_migration(PGconn *db, const char *dir,
                                 const struct migration *migration)
{
	char path[4096];
	char version_text[8];
	const char *params[2];
	char *sql = NULL;
	PGresult *res = NULL;
	fa_result result;

	snprintf(path, sizeof(path), "%s/%s", dir, migration->name);
	result = read_file(path, &sql);
	if (result != FA_OK)
		return result;
	result = fa_db_begin(db);
	if (result != FA_OK)
		goto out;
	/* A migration file contains several statements, which only the simple
	 * query protocol (PQexec) accepts. The file is trusted input from
	 * the release, never from a request. */
	res = PQexec(db, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *message =
		        PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		fprintf(stderr,
		        "fleetauthd: migration %s failed: %s; nothing of it "
		        "was applied\n",
		        path, message != NULL ? message : PQerrorMessage(db));
		result = FA_ERR_INVALID;
		goto out;
	}
	snprintf(version_text, sizeof(version_text), "%d", migration->version);
	params[0] = version_text;
	params[1] = migration->name;
	result = fa_db_command(db,
	                       "INSERT INTO schema_migrations (version, name) "
	                       "VALUES ($1, $2)",
	                       2, params);
	if (result != FA_OK)
		goto out;
	result = fa_db_commit(db);
	if (result == FA_OK)
		fa_log(FA_LOG_INFO, NULL, "applied migration %s",
		       migration->name);
out:
	PQclear(res);
	fa_db_rollback(db);
	free(sql);
	return result;
}

static fa_result migrate_locked(struct fa_service *svc, PGconn *db)
{
	struct migration by_version[FLEETAUTH_SCHEMA_VERSION + 1];
	long long current = 0;
	fa_result result;
	int version;

	memset(by_version, 0, sizeof(by_version));
	result = fa_db_command(db,
	                       "CREATE TABLE IF NOT EXISTS schema_migrations ("
	                       "version integer PRIMARY KEY, "
	                       "name text NOT NULL, "
	                       "applied_at timestamptz NOT NULL DEFAULT now())",
	                       0, NULL);
	if (result != FA_OK)
		return result;
	result = fa_schema_version(db, &current);
	if (result != FA_OK)
		return result;
	if (current > FLEETAUTH_SCHEMA_VERSION) {
		fprintf(stderr,
		        "fleetauthd: the database has schema version %lld but "
		        "this fleetauthd knows only up to %d; run a newer "
		        "fleetauthd\n",
		        current, FLEETAUTH_SCHEMA_VERSION);
		return FA_ERR_INVALID;
	}
	result = list_migrations(svc->config.schema_dir, by_version);
	if (result != FA_OK)
		return result;
	for (version = (int)current + 1; version <= FLEETAUTH_SCHEMA_VERSION;
	     version++) {
		result = apply_migration(db, svc->config.schema_dir,
		                         &by_version[version]);
		if (result != FA_OK)
			return result;
	}
	fa_log(FA_LOG_INFO, NULL, "database schema at version %d",
	       FLEETAUTH_SCHEMA_VERSION);
	return FA_OK;
}

int fa_cmd_migrate(struct fa_service *svc)
{
	PGconn *db = NULL;
	fa_result result;
	const char *lock_params[1] = {MIGRATION_LOCK_KEY};

	result = fa_db_connect(svc, &db);
	if (result != FA_OK) {
		fprintf(stderr,
		        "fleetauthd: cannot connect to database_url; check "
		        "that PostgreSQL runs and the URL is right\n");
		return 1;
	}
	result = fa_db_command(db, "SELECT pg_advisory_lock($1::bigint)", 1,
	                       lock_params);
	if (result == FA_OK) {
		result = migrate_locked(svc, db);
		fa_db_command(db, "SELECT pg_advisory_unlock($1::bigint)", 1,
		              lock_params);
	}
	PQfinish(db);
	return result == FA_OK ? 0 : 1;
}
