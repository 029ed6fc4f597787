#include "throttle.h"

#include <stdio.h>
#include <stdlib.h>

fa_result fa_throttle_check(PGconn *db, const char *user, const char *address,
                            struct fa_throttle_state *state)
{
	PGresult *res = NULL;
	fa_result result;
	int i;

	state->scope = FA_THROTTLE_USER;
	state->retry_after = 0;
	result = fa_db_exec(
	        db, &res,
	        "SELECT scope, ceil(extract(epoch FROM locked_until - now()))"
	        "::bigint FROM login_failures WHERE locked_until > now() AND "
	        "((scope = 'user' AND key = $1) OR (scope = 'address' AND "
	        "key = $2))",
	        2, (const char *[]){user, address});
	if (result != FA_OK)
		return result;
	for (i = 0; i < PQntuples(res); i++) {
		long long left = strtoll(fa_db_value(res, i, 1), NULL, 10);

		if (left < 1)
			left = 1;
		if (left > state->retry_after) {
			state->retry_after = left;
			state->scope = fa_db_value(res, i, 0)[0] == 'a'
			                       ? FA_THROTTLE_ADDRESS
			                       : FA_THROTTLE_USER;
		}
	}
	PQclear(res);
	return FA_OK;
}

/*
 * Adds one failure to the account row of user. The row is created first so
 * that the UPDATE, which takes the row lock, counts every concurrent
 * failure.
 */
static fa_result count_user(PGconn *db, const struct fa_service_config *config,
                            const char *user, long long *locked_for)
{
	char max_failures[24];
	char base[24];
	char cap[24];
	PGresult *res = NULL;
	fa_result result;

	*locked_for = 0;
	snprintf(max_failures, sizeof(max_failures), "%lld",
	         config->login_max_failures);
	snprintf(base, sizeof(base), "%lld", config->lockout_base);
	snprintf(cap, sizeof(cap), "%d", FA_THROTTLE_LOCK_MAX);
	result = fa_db_command(db,
	                       "INSERT INTO login_failures (scope, key) VALUES "
	                       "('user', $1) ON CONFLICT DO NOTHING",
	                       1, (const char *[]){user});
	if (result != FA_OK)
		return result;
	/* lockouts counts previous locks: the next lock lasts
	 * base * 2^lockouts seconds, capped. */
	result = fa_db_exec(
	        db, &res,
	        "UPDATE login_failures SET last_failure = now(), "
	        "failures = CASE WHEN failures + 1 >= $2::int THEN 0 "
	        "ELSE failures + 1 END, "
	        "lockouts = CASE WHEN failures + 1 >= $2::int THEN lockouts + "
	        "1 "
	        "ELSE lockouts END, "
	        "locked_until = CASE WHEN failures + 1 >= $2::int THEN now() + "
	        "make_interval(secs => least($3::float8 * power(2, "
	        "least(lockouts, 30)), $4::float8)) ELSE locked_until END "
	        "WHERE scope = 'user' AND key = $1 RETURNING failures = 0, "
	        "least($3::float8 * power(2, least(lockouts - 1, 30)), "
	        "$4::float8)::bigint",
	        4, (const char *[]){user, max_failures, base, cap});
	if (result == FA_OK && PQntuples(res) == 1 &&
	    fa_db_value(res, 0, 0)[0] == 't')
		*locked_for = strtoll(fa_db_value(res, 0, 1), NULL, 10);
	PQclear(res);
	return result;
}

/* Adds one failure to the row of address, restarting the count after a
 * quiet window. */
static fa_result count_address(PGconn *db, const char *address,
                               long long *locked_for)
{
	char max_failures[24];
	char window[24];
	PGresult *res = NULL;
	fa_result result;

	*locked_for = 0;
	snprintf(max_failures, sizeof(max_failures), "%d",
	         FA_THROTTLE_ADDRESS_MAX);
	snprintf(window, sizeof(window), "%d", FA_THROTTLE_ADDRESS_WINDOW);
	result = fa_db_command(db,
	                       "INSERT INTO login_failures (scope, key) VALUES "
	                       "('address', $1) ON CONFLICT DO NOTHING",
	                       1, (const char *[]){address});
	if (result != FA_OK)
		return result;
	result = fa_db_exec(
	        db, &res,
	        "WITH counted AS (SELECT CASE WHEN last_failure < now() - "
	        "make_interval(secs => $3::int) THEN 1 ELSE failures + 1 END "
	        "AS n FROM login_failures WHERE scope = 'address' AND key = $1 "
	        "FOR UPDATE) "
	        "UPDATE login_failures f SET last_failure = now(), "
	        "failures = CASE WHEN c.n >= $2::int THEN 0 ELSE c.n END, "
	        "lockouts = CASE WHEN c.n >= $2::int THEN f.lockouts + 1 "
	        "ELSE f.lockouts END, "
	        "locked_until = CASE WHEN c.n >= $2::int THEN now() + "
	        "make_interval(secs => $3::int) ELSE f.locked_until END "
	        "FROM counted c WHERE f.scope = 'address' AND f.key = $1 "
	        "RETURNING c.n >= $2::int",
	        3, (const char *[]){address, max_failures, window});
	if (result == FA_OK && PQntuples(res) == 1 &&
	    fa_db_value(res, 0, 0)[0] == 't')
		*locked_for = FA_THROTTLE_ADDRESS_WINDOW;
	PQclear(res);
	return result;
}

fa_result fa_throttle_failure(PGconn *db,
                              const struct fa_service_config *config,
                              const char *user, const char *address,
                              struct fa_throttle_state *state)
{
	long long user_lock = 0;
	long long address_lock = 0;
	fa_result result;

	state->scope = FA_THROTTLE_USER;
	state->retry_after = 0;
	if (user != NULL) {
		result = count_user(db, config, user, &user_lock);
		if (result != FA_OK)
			return result;
	}
	result = count_address(db, address, &address_lock);
	if (result != FA_OK)
		return result;
	if (address_lock > user_lock) {
		state->scope = FA_THROTTLE_ADDRESS;
		state->retry_after = address_lock;
	} else {
		state->retry_after = user_lock;
	}
	return FA_OK;
}

fa_result fa_throttle_success(PGconn *db, const char *user)
{
	return fa_db_command(db,
	                     "DELETE FROM login_failures WHERE scope = 'user' "
	                     "AND key = $1",
	                     1, (const char *[]){user});
}

fa_result fa_throttle_prune(PGconn *db)
{
	char forget[24];
	fa_result result;

	snprintf(forget, sizeof(forget), "%d", FA_THROTTLE_FORGET);
	result =
	        fa_db_command(db,
	                      "DELETE FROM login_failures WHERE last_failure < "
	                      "now() - make_interval(secs => $1::int) AND "
	                      "(locked_until IS NULL OR locked_until < now())",
	                      1, (const char *[]){forget});
	if (result != FA_OK)
		return result;
	return fa_db_command(db,
	                     "DELETE FROM mfa_challenges WHERE expires_at < "
	                     "now() - make_interval(secs => $1::int)",
	                     1, (const char *[]){forget});
}
