/*
 * Refresh tokens: "frt_" + 43 base64url characters, stored as SHA-256 in
 * refresh_tokens under a family (one login). Every use rotates the token;
 * presenting a token that was already rotated revokes its whole family.
 */
#ifndef FA_REFRESH_H
#define FA_REFRESH_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "fa_result.h"
#include "service.h"
#include "tokens.h"

#define FA_REFRESH_PREFIX "frt_"
#define FA_REFRESH_TOKEN_LEN (4 + FA_SECRET_B64_LEN)

/*
 * SQL that joins the local time of the user's carrier (UTC for platform
 * users) as lt.t, and the boolean that is true when it lies inside the
 * user's access window. The window end is exclusive; a window whose end is
 * before its start spans midnight. Both expect users as u and carriers as
 * c (LEFT JOIN).
 */
#define FA_SQL_LOCAL_TIME                                                      \
	" CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE "                     \
	"coalesce(c.time_zone, 'UTC'))::time AS t) lt "
#define FA_SQL_IN_WINDOW                                                       \
	"(u.window_start IS NULL OR CASE WHEN u.window_start <= "              \
	"u.window_end THEN lt.t >= u.window_start AND lt.t < u.window_end "    \
	"ELSE lt.t >= u.window_start OR lt.t < u.window_end END)"
/* The window as "HH:MM-HH:MM ZONE", or NULL when the user has none. */
#define FA_SQL_WINDOW_TEXT                                                     \
	"CASE WHEN u.window_start IS NULL THEN NULL ELSE "                     \
	"to_char(u.window_start, 'HH24:MI') || '-' || "                        \
	"to_char(u.window_end, 'HH24:MI') || ' ' || "                          \
	"coalesce(c.time_zone, 'UTC') END"

enum fa_refresh_outcome {
	FA_REFRESH_OK = 0,
	FA_REFRESH_UNKNOWN,       /* no such token */
	FA_REFRESH_REUSED,        /* already rotated: family now revoked */
	FA_REFRESH_REVOKED,       /* family revoked earlier */
	FA_REFRESH_EXPIRED,       /* token or family past expires_at */
	FA_REFRESH_USER_INACTIVE, /* user not active */
	FA_REFRESH_OUTSIDE_WINDOW /* outside the user's access window */
};

/* Result of a rotation: the token's family and user and, on
 * FA_REFRESH_OK, the new token. */
struct fa_refresh_result {
	enum fa_refresh_outcome outcome;
	char family[FA_ID_MAX + 1];
	char user[FA_ID_MAX + 1];
	char carrier[FA_ID_MAX + 1];
	char device[FA_ID_MAX + 1];
	char window[96];
	enum fa_role role;
	unsigned amr;
	char token[FA_REFRESH_TOKEN_LEN + 1];
};

/* Parses a Postgres text[] of amr names such as "{pwd,otp}". */
unsigned fa_amr_parse_array(const char *text);

/* Writes amr bits as a Postgres text[] literal such as "{pwd,otp}". */
void fa_amr_format_array(unsigned amr, char *out, size_t size);

/*
 * Creates a family for user (device may be NULL) that expires after
 * refresh_token_days, and its first token. Runs on db as it is, so inside
 * the caller's transaction when one is open. Writes the family id and the
 * token (a secret: wipe it after use).
 */
fa_result fa_refresh_family_create(PGconn *db,
                                   const struct fa_service_config *config,
                                   const char *user, const char *device,
                                   unsigned amr, char family[FA_ID_MAX + 1],
                                   char token[FA_REFRESH_TOKEN_LEN + 1]);

/*
 * Rotates token in a transaction on req->db. The token row is locked with
 * SELECT ... FOR UPDATE, so concurrent uses of one token are serialized
 * and at most one of them gets FA_REFRESH_OK. A reused token revokes the
 * family (revoke_reason 'reuse'), records refresh.reuse_detected and
 * commits. On FA_REFRESH_OK the transaction stays open with the old token
 * marked rotated and the new one inserted: the caller commits after it has
 * signed the access token, or rolls back. Every other outcome rolls back.
 * Returns FA_OK with out->outcome set, or the fa_db_* error (rolled back).
 */
fa_result fa_refresh_rotate(struct fa_request *req, const char *token,
                            struct fa_refresh_result *out);

/*
 * Revokes the family of token with reason. *found is false when no such
 * token exists. family and user receive the family's ids.
 */
fa_result fa_refresh_revoke(PGconn *db, const char *token, const char *reason,
                            bool *found, char family[FA_ID_MAX + 1],
                            char user[FA_ID_MAX + 1]);

#endif
