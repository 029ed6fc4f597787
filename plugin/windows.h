/*
 * Access windows in the broker. A user whose users.window_start and
 * window_end are set may log in only inside that window, in the carrier's
 * time zone. fleetauthd rejects logins and refreshes outside it. The plugin
 * rejects CONNECTs and ends sessions outside it too, because an access
 * token issued just before the window closed would otherwise stay valid
 * until it expires.
 *
 * PostgreSQL has the time-zone rules, so the plugin queries it, on a side
 * connection, for the users outside their window now and the seconds until
 * the next window opens or closes. The next query runs half a second after
 * that moment, and at least every 15 s so that edited windows take effect.
 * Until the first result arrives, and while the database is unreachable,
 * the last result stays in force (at start: no user is outside).
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

/* Advances the query without waiting on the database (see side.h). Returns
 * true when the set of users outside their window changed, so that the
 * caller checks its sessions again. now_ms is CLOCK_MONOTONIC ms. */
bool fa_windows_tick(struct fa_windows *windows, int64_t now_ms);

/* True when user_id is outside its access window by the last result. */
bool fa_windows_outside(const struct fa_windows *windows, const char *user_id);

/* Counts the users outside their window by the last result. */
size_t fa_windows_outside_count(const struct fa_windows *windows);

/* Applies a query result as it arrives: ids separated by commas, and
 * the seconds until the next window opens or closes. Returns true when the
 * set changed. For fa_windows_tick and tests. */
bool fa_windows_apply(struct fa_windows *windows, const char *ids,
                      long long next_s, int64_t now_ms);

/* When the next query is due, in CLOCK_MONOTONIC milliseconds. */
int64_t fa_windows_next_query_ms(const struct fa_windows *windows);

#endif
