/* Identifier rule shared by carriers, users, devices, loads and keys. */
#ifndef FA_IDS_H
#define FA_IDS_H

#include <stdbool.h>
#include <stddef.h>

#define FA_ID_MAX 64

/* True when s is 1 to FA_ID_MAX characters of [A-Za-z0-9_-]. NULL is
 * invalid. */
bool fa_id_valid(const char *s);

/* Same rule for a string that is not NUL-terminated. */
bool fa_id_valid_n(const char *s, size_t len);

#endif
