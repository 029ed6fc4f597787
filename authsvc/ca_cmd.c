/* "fleetauthd ca": creates, imports and exports the fleet CA. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "ca.h"
#include "service.h"

static void ca_usage(void)
{
	fprintf(stderr,
	        "usage: fleetauthd ca init [--days N] [--alg ec|rsa]\n"
	        "       fleetauthd ca import --cert FILE --key FILE\n"
	        "       fleetauthd ca export [--out FILE]\n"
	        "\n"
	        "init    creates a self-signed fleet CA (EC P-256 by default,\n"
	        "        or RSA 3072) valid for N days (default %d)\n"
	        "import  stores an existing CA certificate and its private\n"
	        "        key (PEM files, key unencrypted)\n"
	        "export  writes the current and previous CA certificates\n"
	        "        (PEM) for a broker's cafile; stdout by default\n"
	        "A new or imported CA becomes current; the CA that was "
	        "current\n"
	        "stays trusted as previous until the next change.\n",
	        FA_CA_DEFAULT_DAYS);
}

/* Returns the value after option name at argv[*i], advancing *i. */
static const char *option_value(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc) {
		fprintf(stderr, "fleetauthd ca: option %s needs a value\n",
		        argv[*i]);
		return NULL;
	}
	*i += 1;
	return argv[*i];
}

static EVP_PKEY *read_key_file(const char *path)
{
	FILE *f;
	EVP_PKEY *key;

	f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	(void)fclose(f); /* opened for reading: nothing to flush */
	return key;
}

static X509 *read_cert_file(const char *path)
{
	FILE *f;
	X509 *cert;

	f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	(void)fclose(f); /* opened for reading: nothing to flush */
	return cert;
}

/* Stores cert and key as the new current CA and records the audit event. */
static int store_and_report(struct fa_service *svc, X509 *cert, EVP_PKEY *key,
                            const char *action)
{
	fa_result result;
	PGconn *db = NULL;
	long id = -1;
	char id_text[32];
	char fingerprint[65];
	cJSON *detail;

	if (svc->kek.id[0] == '\0') {
		fprintf(stderr, "fleetauthd ca: no key-encryption key loaded; "
		                "set kek_file and kek_id\n");
		return 1;
	}
	result = fa_db_connect(svc, &db);
	if (result != FA_OK) {
		fprintf(stderr,
		        "fleetauthd ca: cannot connect to the "
		        "database: %s\n",
		        fa_result_str(result));
		return 1;
	}
	result = fa_ca_store(db, &svc->kek, cert, key, &id);
	if (result != FA_OK) {
		fprintf(stderr, "fleetauthd ca: storing the CA failed: %s\n",
		        fa_result_str(result));
		PQfinish(db);
		return 1;
	}
	snprintf(id_text, sizeof(id_text), "%ld", id);
	fa_cert_fingerprint(cert, fingerprint);
	detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "fingerprint_sha256", fingerprint);
	cJSON_AddStringToObject(detail, "kek_id", svc->kek.id);
	fa_audit_record(db, "fleetauthd", action, id_text, "success", NULL,
	                NULL, detail);
	cJSON_Delete(detail);
	PQfinish(db);
	printf("fleet CA %s is current (SHA-256 fingerprint %s)\n", id_text,
	       fingerprint);
	return 0;
}

static int cmd_init(struct fa_service *svc, int argc, char **argv)
{
	const char *alg = "ec";
	long days = FA_CA_DEFAULT_DAYS;
	const char *value;
	char *end;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	int status;
	int i;

	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--days") == 0) {
			value = option_value(argc, argv, &i);
			if (value == NULL)
				return 2;
			errno = 0;
			days = strtol(value, &end, 10);
			if (errno != 0 || *end != '\0' || days < 1 ||
			    days > 36500) {
				fprintf(stderr,
				        "fleetauthd ca init: --days %s is "
				        "invalid: give 1 to 36500\n",
				        value);
				return 2;
			}
		} else if (strcmp(argv[i], "--alg") == 0) {
			alg = option_value(argc, argv, &i);
			if (alg == NULL)
				return 2;
			if (strcmp(alg, "ec") != 0 && strcmp(alg, "rsa") != 0) {
				fprintf(stderr,
				        "fleetauthd ca init: --alg %s is "
				        "invalid: give ec or rsa\n",
				        alg);
				return 2;
			}
		} else {
			ca_usage();
			return 2;
		}
	}
	if (fa_ca_generate(alg, (int)days, &cert, &key) != FA_OK) {
		fprintf(stderr, "fleetauthd ca init: key generation failed\n");
		return 1;
	}
	status = store_and_report(svc, cert, key, "ca.init");
	X509_free(cert);
	EVP_PKEY_free(key);
	return status;
}

static int cmd_import(struct fa_service *svc, int argc, char **argv)
{
	const char *cert_path = NULL;
	const char *key_path = NULL;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	char err[256];
	int status = 1;
	int i;

	for (i = 2; i < argc; i++) {
		const char **target;

		if (strcmp(argv[i], "--cert") == 0)
			target = &cert_path;
		else if (strcmp(argv[i], "--key") == 0)
			target = &key_path;
		else {
			ca_usage();
			return 2;
		}
		*target = option_value(argc, argv, &i);
		if (*target == NULL)
			return 2;
	}
	if (cert_path == NULL || key_path == NULL) {
		ca_usage();
		return 2;
	}
	cert = read_cert_file(cert_path);
	if (cert == NULL) {
		fprintf(stderr,
		        "fleetauthd ca import: cannot read a PEM certificate "
		        "from %s\n",
		        cert_path);
		goto out;
	}
	key = read_key_file(key_path);
	if (key == NULL) {
		fprintf(stderr,
		        "fleetauthd ca import: cannot read an unencrypted PEM "
		        "private key from %s\n",
		        key_path);
		goto out;
	}
	if (fa_ca_check_pair(cert, key, err, sizeof(err)) != FA_OK) {
		fprintf(stderr, "fleetauthd ca import: %s\n", err);
		goto out;
	}
	status = store_and_report(svc, cert, key, "ca.import");
out:
	ERR_clear_error();
	X509_free(cert);
	EVP_PKEY_free(key);
	return status;
}

static int cmd_export(struct fa_service *svc, int argc, char **argv)
{
	const char *path = NULL;
	PGconn *db = NULL;
	PGresult *res = NULL;
	FILE *f = stdout;
	int status = 1;
	int i;

	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--out") != 0) {
			ca_usage();
			return 2;
		}
		path = option_value(argc, argv, &i);
		if (path == NULL)
			return 2;
	}
	if (fa_db_connect(svc, &db) != FA_OK) {
		fprintf(stderr, "fleetauthd ca export: cannot connect to the "
		                "database\n");
		return 1;
	}
	if (fa_db_exec(db, &res,
	               "SELECT cert_pem FROM fleet_ca WHERE status IN "
	               "('current', 'previous') ORDER BY id DESC",
	               0, NULL) != FA_OK)
		goto out;
	if (PQntuples(res) == 0) {
		fprintf(stderr, "fleetauthd ca export: no fleet CA; run "
		                "\"fleetauthd ca init\" first\n");
		goto out;
	}
	if (path != NULL) {
		f = fopen(path, "w");
		if (f == NULL) {
			fprintf(stderr,
			        "fleetauthd ca export: cannot write %s: "
			        "%s\n",
			        path, strerror(errno));
			goto out;
		}
	}
	for (i = 0; i < PQntuples(res); i++)
		fputs(fa_db_value(res, i, 0), f);
	status = 0;
	if (f != stdout && fclose(f) != 0) {
		fprintf(stderr, "fleetauthd ca export: writing %s failed\n",
		        path);
		status = 1;
	}
out:
	PQclear(res);
	PQfinish(db);
	return status;
}

/*
 * Runs "fleetauthd ca init|import|export". argv[0] is "ca". Returns the
 * process exit status: 0 on success, 1 on failure, 2 on a usage error.
 */
int fa_cmd_ca(struct fa_service *svc, int argc, char **argv)
{
	if (argc < 2) {
		ca_usage();
		return 2;
	}
	if (strcmp(argv[1], "init") == 0)
		return cmd_init(svc, argc, argv);
	if (strcmp(argv[1], "import") == 0)
		return cmd_import(svc, argc, argv);
	if (strcmp(argv[1], "export") == 0)
		return cmd_export(svc, argc, argv);
	ca_usage();
	return 2;
}
