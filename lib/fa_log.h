/*
 * JSON-lines logging for fleetauthd and the tools: one object per line on
 * stderr with time, level, message and optional key/value fields. The plugin
 * logs through mosquitto_log_printf instead.
 */
#ifndef FA_LOG_H
#define FA_LOG_H

enum fa_log_level {
	FA_LOG_DEBUG = 0,
	FA_LOG_INFO,
	FA_LOG_WARNING,
	FA_LOG_ERROR
};

void fa_log_set_level(enum fa_log_level level);

/* Parses "debug", "info", "warning" or "error"; -1 if unknown. */
int fa_log_parse_level(const char *name);

/*
 * Writes one line. fields is NULL or a NULL-terminated list of key, value
 * pairs (values are strings and are JSON-escaped; a NULL value also ends
 * the list), for example
 * fa_log(FA_LOG_INFO, (const char *[]){"request_id", rid, "user", id, NULL},
 *        "login succeeded").
 * Never pass a password, token, TOTP seed or private key.
 */
void fa_log(enum fa_log_level level, const char *const *fields,
            const char *format, ...) __attribute__((format(printf, 3, 4)));

#endif
