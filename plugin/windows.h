/*
 * Access windows in the broker. A user whose users.window_start and
 * window_end are set may log in only inside that window, in the carrier's
 * time zone; fleetauthd refuses logins and refreshes outside it, and the
 * plugin refuses CONNECTs and ends sessions outside it, because an access
 * token issued just before the window closed would otherwise last until
 * it expires.
 *
 * PostgreSQL knows the time zones, so the plugin asks it, on a side
 * connection, which users are outside their window now and in how many
 * seconds the next window opens or closes. It asks again half a second
 * after that moment, and at least every 15 s so that edited windows take
 * effect. Until the first answer arrives, and while the database is away,
 * the last answer holds (none at start: no user is outside).
 */
#ifndef FA_WINDOWS_H
#define FA_WINDOWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fa_windows;

/* conninfo is copied; log, when not NULL, receives one line per failure
 * and one per change of the set. Returns NULL when out of memory. */
struct fa_windows *fa_windows_new(const char *conninfo,
                                  void (*log)(const char *message));
void fa_windows_free(struct fa_windows *windows);

/* Advances the query; never blocks. Returns true when the set of users
 * outside their window changed, so that the caller checks its sessions
 * again. now_ms is CLOCK_MONOTONIC milliseconds. */
bool fa_windows_tick(struct fa_windows *windows, int64_t now_ms);

/* True when user_id is outside its access window by the last answer. */
bool fa_windows_outside(const struct fa_windows *windows, const char *user_id);

/* Users outside their window by the last answer. */
size_t fa_windows_outside_count(const struct fa_windows *windows);

/* Applies an answer as the query returns it: ids separated by commas, and
 * the seconds until the next window opens or closes. Returns true when the
 * set changed. For fa_windows_tick and tests. */
bool fa_windows_apply(struct fa_windows *windows, const char *ids,
                      long long next_s, int64_t now_ms);

/* When the next query is due, in CLOCK_MONOTONIC milliseconds. */
int64_t fa_windows_next_query_ms(const struct fa_windows *windows);

#endif
