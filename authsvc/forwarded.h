/*
 * Client address of a request that arrives through trusted reverse proxies:
 * the trusted_proxies list (IP addresses and CIDR ranges) and the
 * X-Forwarded-For header.
 */
#ifndef FA_FORWARDED_H
#define FA_FORWARDED_H

#include <stdbool.h>
#include <stddef.h>

#include "fa_result.h"

/* Longest numeric address text, IPv6 with its NUL (INET6_ADDRSTRLEN). */
#define FA_ADDRESS_MAX 46

/*
 * Checks a trusted_proxies value: entries separated by commas, each an IPv4
 * or IPv6 address with an optional /prefix. An empty list is valid. On
 * FA_ERR_INVALID writes a message naming the bad entry into err.
 */
fa_result fa_proxy_list_check(const char *list, char *err, size_t err_size);

/* True when address (numeric IPv4 or IPv6) matches an entry of list. An
 * IPv4-mapped IPv6 address matches IPv4 entries. */
bool fa_proxy_list_contains(const char *list, const char *address);

/*
 * Writes the client address of a request into out. When peer is in
 * trusted_proxies, forwarded (the X-Forwarded-For values joined with
 * commas, or NULL) is read from the right: trusted proxies are skipped and
 * the first other entry is the client. The left-most entry is used when
 * every entry is trusted. The peer address is used when the peer is not
 * trusted, the header is missing, or the chosen entry is not a numeric IP
 * address. Output addresses are in canonical inet_ntop form.
 */
void fa_forwarded_client(const char *trusted_proxies, const char *peer,
                         const char *forwarded, char *out, size_t out_size);

#endif
