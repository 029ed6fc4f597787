/* Database helpers over libpq: parameterized statements, transactions,
 * SQLSTATE mapping and the per-worker-thread connection. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "metrics.h"

static pthread_key_t worker_key;
static pthread_once_t worker_key_once = PTHREAD_ONCE_INIT;

static void close_worker_connection(void *conn)
{
	PQfinish(conn);
}

static void create_worker_key(void)
{
	pthread_key_create(&worker_key, close_worker_connection);
}

/* libpq prints notices (for example "relation already exists, skipping")
 * to stderr by default; send them to the JSON log at debug level. */
static void log_notice(void *arg, const char *message)
{
	(void)arg;
	fa_log(FA_LOG_DEBUG, NULL, "database notice: %.*s",
	       (int)strcspn(message, "\n"), message);
}

fa_result fa_db_connect(const struct fa_service *svc, PGconn **conn_out)
{
	PGconn *conn;

	*conn_out = NULL;
	conn = PQconnectdb(svc->config.database_url);
	if (conn == NULL)
		return FA_ERR_NOMEM;
	if (PQstatus(conn) != CONNECTION_OK) {
		const char *message = PQerrorMessage(conn);

		fa_log(FA_LOG_ERROR, NULL,
		       "cannot connect to the database named by "
		       "database_url: %.*s",
		       (int)strcspn(message, "\n"), message);
		PQfinish(conn);
		fa_metrics_db_error();
		return FA_ERR_IO;
	}
	PQsetNoticeProcessor(conn, log_notice, NULL);
	*conn_out = conn;
	return FA_OK;
}

/*
 * Detects a connection that the server closed while it was idle (restart,
 * pg_terminate_backend, idle timeout) without blocking. The server sends a
 * FATAL message and then closes the socket. The first PQconsumeInput reads
 * the message, and the second reads the end of the stream and sets PQstatus
 * to CONNECTION_BAD.
 */
static bool connection_alive(PGconn *conn)
{
	int i;

	if (PQstatus(conn) != CONNECTION_OK)
		return false;
	if (PQtransactionStatus(conn) != PQTRANS_IDLE)
		return true;
	for (i = 0; i < 2; i++) {
		if (PQconsumeInput(conn) == 0)
			return false;
	}
	return PQstatus(conn) == CONNECTION_OK;
}

PGconn *fa_db_worker(struct fa_service *svc)
{
	PGconn *conn;

	pthread_once(&worker_key_once, create_worker_key);
	conn = pthread_getspecific(worker_key);
	if (conn != NULL && connection_alive(conn))
		return conn;
	if (conn != NULL) {
		fa_log(FA_LOG_WARNING, NULL,
		       "database connection lost, reconnecting");
		PQreset(conn);
		if (PQstatus(conn) == CONNECTION_OK)
			return conn;
		PQfinish(conn);
		pthread_setspecific(worker_key, NULL);
		conn = NULL;
	}
	if (fa_db_connect(svc, &conn) != FA_OK)
		return NULL;
	pthread_setspecific(worker_key, conn);
	return conn;
}

/* Maps a failed result to a fa_result by its SQLSTATE class. */
static fa_result classify_error(PGconn *db, const PGresult *res)
{
	const char *state = NULL;

	if (res != NULL)
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (PQstatus(db) != CONNECTION_OK || state == NULL)
		return FA_ERR_IO;
	if (strcmp(state, "23505") == 0)
		return FA_ERR_DENIED;
	if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0)
		return FA_ERR_INVALID;
	/* 08: connection exception, 53: insufficient resources, 57: operator
	 * intervention (shutdown), 40: serialization failure or deadlock. */
	return FA_ERR_IO;
}

static void log_failure(PGconn *db, const PGresult *res, const char *sql)
{
	const char *state = NULL;
	const char *message = PQerrorMessage(db);

	if (res != NULL) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	}
	if (message == NULL)
		message = "unknown error";
	/* Unique violations are an expected outcome (HTTP 409). */
	fa_log(state != NULL && strcmp(state, "23505") == 0 ? FA_LOG_DEBUG
	                                                    : FA_LOG_ERROR,
	       (const char *[]){"sqlstate", state != NULL ? state : "none",
	                        NULL},
	       "database statement failed: %.*s; statement: %.60s",
	       (int)strcspn(message, "\n"), message, sql);
}

fa_result fa_db_exec(PGconn *db, PGresult **res_out, const char *sql,
                     int nparams, const char *const *params)
{
	PGresult *res;
	ExecStatusType status;
	fa_result result;
	bool idle;

	*res_out = NULL;
	if (db == NULL)
		return FA_ERR_IO;
	idle = PQtransactionStatus(db) == PQTRANS_IDLE;
	res = PQexecParams(db, sql, nparams, NULL, params, NULL, NULL, 0);
	status = PQresultStatus(res);
	/* A connection lost outside a transaction is reset and the statement
	 * sent once more, so that a database restart costs no failed
	 * request. NOTE: if the server crashed after committing the statement
	 * but before replying, the retry runs it twice. */
	if (status == PGRES_FATAL_ERROR && idle &&
	    PQstatus(db) == CONNECTION_BAD) {
		PQclear(res);
		fa_log(FA_LOG_WARNING, NULL,
		       "database connection lost, reconnecting");
		PQreset(db);
		res = PQexecParams(db, sql, nparams, NULL, params, NULL, NULL,
		                   0);
		status = PQresultStatus(res);
	}
	if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
		*res_out = res;
		return FA_OK;
	}
	log_failure(db, res, sql);
	result = classify_error(db, res);
	if (result == FA_ERR_IO)
		fa_metrics_db_error();
	PQclear(res);
	return result;
}

static bool result_has_rows(const PGresult *res)
{
	const char *changed;

	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		return PQntuples(res) > 0;
	changed = PQcmdTuples((PGresult *)res);
	return changed[0] != '\0' && strcmp(changed, "0") != 0;
}

fa_result fa_db_exec_one(PGconn *db, PGresult **res_out, const char *sql,
                         int nparams, const char *const *params)
{
	PGresult *res = NULL;
	fa_result result;

	*res_out = NULL;
	result = fa_db_exec(db, &res, sql, nparams, params);
	if (result != FA_OK)
		return result;
	if (!result_has_rows(res)) {
		PQclear(res);
		return FA_ERR_NOT_FOUND;
	}
	*res_out = res;
	return FA_OK;
}

fa_result fa_db_command(PGconn *db, const char *sql, int nparams,
                        const char *const *params)
{
	PGresult *res = NULL;
	fa_result result;

	result = fa_db_exec(db, &res, sql, nparams, params);
	PQclear(res);
	return result;
}

fa_result fa_db_begin(PGconn *db)
{
	return fa_db_command(db, "BEGIN", 0, NULL);
}

fa_result fa_db_commit(PGconn *db)
{
	return fa_db_command(db, "COMMIT", 0, NULL);
}

void fa_db_rollback(PGconn *db)
{
	PGresult *res;

	if (db == NULL || PQtransactionStatus(db) == PQTRANS_IDLE)
		return;
	res = PQexec(db, "ROLLBACK");
	PQclear(res);
}

const char *fa_db_value(const PGresult *res, int row, int column)
{
	if (res == NULL || row >= PQntuples(res) || column >= PQnfields(res))
		return NULL;
	if (PQgetisnull(res, row, column))
		return NULL;
	return PQgetvalue(res, row, column);
}
