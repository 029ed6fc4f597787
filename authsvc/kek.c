/*
 * "fleetauthd kek status" and "fleetauthd kek rewrap": report which
 * key-encryption key seals each stored secret, and re-encrypt every secret
 * sealed with a previous KEK under the current one.
 *
 * Sealed secrets and the associated data that binds each blob to its row:
 *   user_totp.secret_enc     "totp:<user_id>"
 *   signing_keys.private_enc "signing_key:<kid>"
 *   fleet_ca.key_enc         "fleet_ca:<id>"
 * These strings must match the ones totp.c, signing_keys.c and ca.c use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

#define REWRAP_BATCH_DEFAULT 100
#define REWRAP_BATCH_MAX 10000

/* One table that contains sealed secrets. */
struct sealed_table {
	const char *table;
	const char *key_column;  /* primary key */
	const char *blob_column; /* bytea sealed with fa_seal */
	const char *aad_prefix;  /* followed by the primary key */
};

static const struct sealed_table sealed_tables[] = {
        {"user_totp", "user_id", "secret_enc", "totp:"},
        {"signing_keys", "kid", "private_enc", "signing_key:"},
        {"fleet_ca", "id", "key_enc", "fleet_ca:"},
};

#define SEALED_TABLE_COUNT (sizeof(sealed_tables) / sizeof(sealed_tables[0]))

static void print_kek_usage(FILE *out)
{
	fprintf(out,
	        "usage: fleetauthd kek status\n"
	        "       fleetauthd kek rewrap [--batch N]\n"
	        "\n"
	        "status   count the sealed secrets per table and KEK id\n"
	        "rewrap   re-encrypt every secret sealed with a key listed "
	        "in kek_previous\n"
	        "         under the current kek_id, N rows per transaction "
	        "(default %d)\n",
	        REWRAP_BATCH_DEFAULT);
}

/* Prints "table kek_id count" for every KEK id in use. */
static int kek_status(PGconn *db)
{
	size_t i;

	for (i = 0; i < SEALED_TABLE_COUNT; i++) {
		const struct sealed_table *t = &sealed_tables[i];
		PGresult *res = NULL;
		char sql[256];
		int row;

		snprintf(sql, sizeof(sql),
		         "SELECT kek_id, count(*) FROM %s GROUP BY kek_id "
		         "ORDER BY kek_id",
		         t->table);
		if (fa_db_exec(db, &res, sql, 0, NULL) != FA_OK) {
			fprintf(stderr,
			        "fleetauthd: reading %s failed; check that "
			        "the database is migrated\n",
			        t->table);
			return 1;
		}
		for (row = 0; row < PQntuples(res); row++)
			printf("%s %s %s\n", t->table, fa_db_value(res, row, 0),
			       fa_db_value(res, row, 1));
		PQclear(res);
	}
	return 0;
}

/* Returns the value of one hex digit, or -1 for any other character. */
static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes a bytea in PostgreSQL's hex text output ("\x0a1b..."). *out is
 * malloc'd and owned by the caller. */
static fa_result bytea_decode(const char *text, uint8_t **out, size_t *len)
{
	size_t hex_len;
	size_t i;
	uint8_t *data;

	*out = NULL;
	if (text == NULL || strncmp(text, "\\x", 2) != 0)
		return FA_ERR_INVALID;
	text += 2;
	hex_len = strlen(text);
	if (hex_len % 2 != 0)
		return FA_ERR_INVALID;
	data = malloc(hex_len / 2 + 1);
	if (data == NULL)
		return FA_ERR_NOMEM;
	for (i = 0; i < hex_len / 2; i++) {
		int high = hex_digit(text[2 * i]);
		int low = hex_digit(text[2 * i + 1]);

		if (high < 0 || low < 0) {
			free(data);
			return FA_ERR_INVALID;
		}
		data[i] = (uint8_t)(high << 4 | low);
	}
	*out = data;
	*len = hex_len / 2;
	return FA_OK;
}

/* Encodes bytes as "\x<hex>" for a bytea text parameter. The caller frees
 * the result. */
static char *bytea_encode(const uint8_t *data, size_t len)
{
	char *text = malloc(2 * len + 3);

	if (text == NULL)
		return NULL;
	text[0] = '\\';
	text[1] = 'x';
	fa_hex_encode(data, len, text + 2);
	return text;
}

/*
 * Opens one blob with old_kek and seals it again with the current KEK under
 * the same associated data. *blob_text_out ("\x<hex>") is malloc'd and owned
 * by the caller. The plaintext is wiped before return.
 */
static fa_result reseal(const struct fa_service *svc,
                        const struct fa_kek *old_kek, const char *aad,
                        const char *blob_text, char **blob_text_out)
{
	fa_result result;
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	uint8_t *plain = NULL;
	size_t plain_len = 0;
	uint8_t *sealed = NULL;
	size_t sealed_len = 0;

	*blob_text_out = NULL;
	result = bytea_decode(blob_text, &blob, &blob_len);
	if (result != FA_OK)
		goto out;
	result = fa_open(old_kek, blob, blob_len, aad, &plain, &plain_len);
	if (result != FA_OK)
		goto out;
	result =
	        fa_seal(&svc->kek, plain, plain_len, aad, &sealed, &sealed_len);
	if (result != FA_OK)
		goto out;
	*blob_text_out = bytea_encode(sealed, sealed_len);
	if (*blob_text_out == NULL)
		result = FA_ERR_NOMEM;
out:
	if (plain != NULL) {
		fa_wipe(plain, plain_len);
		free(plain);
	}
	free(blob);
	free(sealed);
	return result;
}

/* Re-encrypts one row selected by rewrap_batch; the UPDATE repeats the old
 * kek_id so that a row changed by another process in between is left
 * alone. */
static fa_result rewrap_row(PGconn *db, const struct fa_service *svc,
                            const struct sealed_table *t,
                            const struct fa_kek *old_kek, const char *key,
                            const char *blob_text)
{
	fa_result result;
	char aad[FA_ID_MAX + 32];
	char sql[256];
	char *new_text = NULL;

	snprintf(aad, sizeof(aad), "%s%s", t->aad_prefix, key);
	result = reseal(svc, old_kek, aad, blob_text, &new_text);
	if (result != FA_OK) {
		fprintf(stderr,
		        "fleetauthd: cannot open %s.%s of %s \"%s\" with KEK "
		        "\"%s\": %s; check that the file listed for this id "
		        "in kek_previous is the key that sealed it\n",
		        t->table, t->blob_column, t->key_column, key,
		        old_kek->id, fa_result_str(result));
		return result;
	}
	snprintf(sql, sizeof(sql),
	         "UPDATE %s SET %s = $2::bytea, kek_id = $3 "
	         "WHERE %s::text = $1 AND kek_id = $4",
	         t->table, t->blob_column, t->key_column);
	result = fa_db_command(
	        db, sql, 4,
	        (const char *const[]){key, new_text, svc->kek.id, old_kek->id});
	free(new_text);
	return result;
}

/*
 * Re-encrypts up to batch rows of t sealed with old_kek in one transaction
 * (rows locked with FOR UPDATE). Adds the rows done to *done and sets
 * *more when a full batch was found.
 */
static fa_result rewrap_batch(PGconn *db, const struct fa_service *svc,
                              const struct sealed_table *t,
                              const struct fa_kek *old_kek, long batch,
                              long *done, bool *more)
{
	fa_result result;
	PGresult *res = NULL;
	char sql[320];
	char limit[24];
	int row;

	*more = false;
	snprintf(limit, sizeof(limit), "%ld", batch);
	snprintf(sql, sizeof(sql),
	         "SELECT %s::text, %s FROM %s WHERE kek_id = $1 "
	         "ORDER BY %s LIMIT $2::int FOR UPDATE",
	         t->key_column, t->blob_column, t->table, t->key_column);
	result = fa_db_begin(db);
	if (result != FA_OK)
		goto out;
	result = fa_db_exec(db, &res, sql, 2,
	                    (const char *const[]){old_kek->id, limit});
	if (result != FA_OK)
		goto out;
	for (row = 0; row < PQntuples(res); row++) {
		result = rewrap_row(db, svc, t, old_kek,
		                    fa_db_value(res, row, 0),
		                    fa_db_value(res, row, 1));
		if (result != FA_OK)
			goto out;
	}
	result = fa_db_commit(db);
	if (result != FA_OK)
		goto out;
	*done += PQntuples(res);
	*more = PQntuples(res) == batch;
out:
	if (result != FA_OK)
		fa_db_rollback(db);
	PQclear(res);
	return result;
}

/* Counts rows of t sealed with a KEK id that is neither current nor listed
 * in kek_previous; rewrap cannot open those. */
static fa_result count_unknown(PGconn *db, const struct fa_service *svc,
                               const struct sealed_table *t, long *count)
{
	fa_result result;
	PGresult *res = NULL;
	char sql[256];
	int row;

	*count = 0;
	snprintf(sql, sizeof(sql),
	         "SELECT kek_id, count(*) FROM %s WHERE kek_id <> $1 "
	         "GROUP BY kek_id",
	         t->table);
	result = fa_db_exec(db, &res, sql, 1,
	                    (const char *const[]){svc->kek.id});
	if (result != FA_OK)
		return result;
	for (row = 0; row < PQntuples(res); row++) {
		const char *id = fa_db_value(res, row, 0);

		if (fa_service_kek(svc, id) != NULL)
			continue;
		*count += strtol(fa_db_value(res, row, 1), NULL, 10);
		fprintf(stderr,
		        "fleetauthd: %s has %s rows sealed with KEK \"%s\", "
		        "which is not loaded; add it to kek_previous and run "
		        "rewrap again\n",
		        t->table, fa_db_value(res, row, 1), id);
	}
	PQclear(res);
	return FA_OK;
}

/* Re-encrypts every row of one table sealed with any previous KEK, prints
 * "rewrapped TABLE N" and sets *done to N. */
static fa_result rewrap_table(PGconn *db, const struct fa_service *svc,
                              const struct sealed_table *t, long batch,
                              long *done, long *unknown)
{
	fa_result result = FA_OK;
	size_t i;

	*done = 0;
	for (i = 0; i < svc->kek_previous_count; i++) {
		const struct fa_kek *old_kek = &svc->kek_previous[i];
		bool more = true;

		if (strcmp(old_kek->id, svc->kek.id) == 0)
			continue;
		while (more) {
			result = rewrap_batch(db, svc, t, old_kek, batch, done,
			                      &more);
			if (result != FA_OK)
				goto out;
		}
	}
	result = count_unknown(db, svc, t, unknown);
out:
	printf("rewrapped %s %ld\n", t->table, *done);
	return result;
}

/*
 * Runs "kek rewrap": each table in turn, batch rows per transaction, so a
 * running fleetauthd keeps serving (it can open both the old and the new
 * blobs as long as its kek_previous lists the old key). Running it again
 * finds nothing to do. Returns 0 when every secret is sealed with the
 * current KEK afterwards, 1 otherwise.
 */
static int kek_rewrap(PGconn *db, const struct fa_service *svc, long batch)
{
	cJSON *detail = cJSON_CreateObject();
	long unknown_total = 0;
	int status = 0;
	size_t i;

	for (i = 0; i < SEALED_TABLE_COUNT; i++) {
		long done = 0;
		long unknown = 0;

		if (rewrap_table(db, svc, &sealed_tables[i], batch, &done,
		                 &unknown) != FA_OK) {
			fprintf(stderr,
			        "fleetauthd: kek rewrap stopped at table %s; "
			        "rows done so far stay committed, fix the "
			        "error and run it again\n",
			        sealed_tables[i].table);
			status = 1;
			break;
		}
		cJSON_AddNumberToObject(detail, sealed_tables[i].table,
		                        (double)done);
		unknown_total += unknown;
	}
	if (status == 0 && unknown_total > 0)
		status = 1;
	fa_audit_record(db, "fleetauthd", "kek.rewrap", svc->kek.id,
	                status == 0 ? "success" : "failure", NULL, NULL,
	                detail);
	cJSON_Delete(detail);
	if (status == 0)
		printf("every sealed secret uses KEK \"%s\"\n", svc->kek.id);
	return status;
}

static bool parse_batch(int argc, char **argv, long *batch)
{
	char *end = NULL;

	*batch = REWRAP_BATCH_DEFAULT;
	if (argc == 2)
		return true;
	if (argc != 4 || strcmp(argv[2], "--batch") != 0)
		return false;
	*batch = strtol(argv[3], &end, 10);
	if (end == argv[3] || *end != '\0' || *batch < 1 ||
	    *batch > REWRAP_BATCH_MAX) {
		fprintf(stderr,
		        "fleetauthd: invalid --batch \"%s\": use 1 to %d\n",
		        argv[3], REWRAP_BATCH_MAX);
		return false;
	}
	return true;
}

/* Entry point of "fleetauthd kek ..."; argv[0] is "kek". Returns the
 * process exit status. */
int fa_cmd_kek(struct fa_service *svc, int argc, char **argv)
{
	PGconn *db = NULL;
	long batch = REWRAP_BATCH_DEFAULT;
	int status;

	if (argc < 2 || (strcmp(argv[1], "status") != 0 &&
	                 strcmp(argv[1], "rewrap") != 0)) {
		print_kek_usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "rewrap") == 0 &&
	    !parse_batch(argc, argv, &batch)) {
		print_kek_usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "status") == 0 && argc != 2) {
		print_kek_usage(stderr);
		return 2;
	}
	if (fa_db_connect(svc, &db) != FA_OK) {
		fprintf(stderr, "fleetauthd: cannot connect to database_url; "
		                "check that PostgreSQL runs and the URL is "
		                "right\n");
		return 1;
	}
	if (strcmp(argv[1], "status") == 0)
		status = kek_status(db);
	else
		status = kek_rewrap(db, svc, batch);
	PQfinish(db);
	return status;
}
