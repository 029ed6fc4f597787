/*
 * Failed-login throttling in table login_failures, per account and per
 * client address.
 *
 * Account: after login_max_failures consecutive failures the account is
 * locked for lockout_base * 2^(lockouts - 1) seconds, at most
 * FA_THROTTLE_LOCK_MAX. A successful login clears the counters.
 * Address: FA_THROTTLE_ADDRESS_MAX failures with no gap of
 * FA_THROTTLE_ADDRESS_WINDOW seconds lock the address for that window.
 * Successes do not clear this counter, so one valid account cannot reset
 * it.
 */
#ifndef FA_THROTTLE_H
#define FA_THROTTLE_H

#include <libpq-fe.h>

#include "fa_result.h"
#include "service.h"

#define FA_THROTTLE_LOCK_MAX 3600
#define FA_THROTTLE_ADDRESS_MAX 20
#define FA_THROTTLE_ADDRESS_WINDOW 600
#define FA_THROTTLE_FORGET 86400

enum fa_throttle_scope { FA_THROTTLE_USER, FA_THROTTLE_ADDRESS };

struct fa_throttle_state {
	enum fa_throttle_scope scope; /* which lock applies */
	long long retry_after;        /* seconds, 0 when not locked */
};

/*
 * Checks whether user or address is locked. Returns FA_OK with
 * state->retry_after 0 when neither is, FA_OK with the larger remaining
 * lock time otherwise, or the fa_db_* error.
 */
fa_result fa_throttle_check(PGconn *db, const char *user, const char *address,
                            struct fa_throttle_state *state);

/*
 * Counts one failed attempt for user (NULL: only the address) and address.
 * Sets state->retry_after to the lock time when this failure locked the
 * account or the address, else 0.
 */
fa_result fa_throttle_failure(PGconn *db,
                              const struct fa_service_config *config,
                              const char *user, const char *address,
                              struct fa_throttle_state *state);

/*
 * Deletes counters that are unlocked and have seen no failure for
 * FA_THROTTLE_FORGET seconds (so a lockout count decays after a quiet
 * day), and MFA challenges that expired that long ago.
 */
fa_result fa_throttle_prune(PGconn *db);

/* Clears the account counters of user after a successful login. */
fa_result fa_throttle_success(PGconn *db, const char *user);

#endif
