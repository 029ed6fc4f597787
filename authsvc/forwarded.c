/* Client addresses behind trusted reverse proxies (X-Forwarded-For). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forwarded.h"

/* An address as 16 bytes; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d). */
struct address {
	unsigned char bytes[16];
	bool v4;
};

/* One trusted_proxies entry: an address and the prefix length in bits of
 * the 16-byte form. */
struct range {
	struct address base;
	unsigned prefix;
};

static bool parse_address(const char *text, struct address *out)
{
	unsigned char v4[4];

	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, text, v4) == 1) {
		out->bytes[10] = 0xff;
		out->bytes[11] = 0xff;
		memcpy(out->bytes + 12, v4, 4);
		out->v4 = true;
		return true;
	}
	if (inet_pton(AF_INET6, text, out->bytes) != 1)
		return false;
	out->v4 = memcmp(out->bytes, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0;
	return true;
}

/* Copies the entry of len bytes at text into buf without the blanks
 * around it; false when it does not fit. */
static bool trim_entry(const char *text, size_t len, char *buf, size_t size)
{
	while (len > 0 && (*text == ' ' || *text == '\t')) {
		text++;
		len--;
	}
	while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= size)
		return false;
	memcpy(buf, text, len);
	buf[len] = '\0';
	return true;
}

/* Parses "address" or "address/prefix"; the prefix counts IPv4 bits for
 * IPv4 addresses. */
static bool parse_range(const char *text, struct range *out)
{
	char buf[FA_ADDRESS_MAX + 8];
	char *slash;
	char *end = NULL;
	long prefix;

	if (strlen(text) >= sizeof(buf))
		return false;
	snprintf(buf, sizeof(buf), "%s", text);
	slash = strchr(buf, '/');
	if (slash != NULL)
		*slash = '\0';
	if (!parse_address(buf, &out->base))
		return false;
	out->prefix = 128;
	if (slash == NULL)
		return true;
	if (slash[1] < '0' || slash[1] > '9')
		return false;
	prefix = strtol(slash + 1, &end, 10);
	if (*end != '\0' || prefix > (out->base.v4 ? 32 : 128))
		return false;
	out->prefix = (unsigned)prefix + (out->base.v4 ? 96 : 0);
	return true;
}

static bool range_contains(const struct range *range,
                           const struct address *address)
{
	unsigned full = range->prefix / 8;
	unsigned rest = range->prefix % 8;
	unsigned char mask;

	if (memcmp(range->base.bytes, address->bytes, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (unsigned char)(0xff << (8 - rest));
	return (range->base.bytes[full] & mask) ==
	       (address->bytes[full] & mask);
}

fa_result fa_proxy_list_check(const char *list, char *err, size_t err_size)
{
	const char *p = list;

	while (p != NULL && *p != '\0') {
		size_t len = strcspn(p, ",");
		char entry[FA_ADDRESS_MAX + 8];
		struct range range;

		if (!trim_entry(p, len, entry, sizeof(entry)) ||
		    !parse_range(entry, &range)) {
			snprintf(err, err_size,
			         "invalid trusted_proxies entry \"%.*s\": use "
			         "IP addresses or CIDR ranges such as "
			         "10.0.0.0/8, separated by commas",
			         (int)(len > 64 ? 64 : len), p);
			return FA_ERR_INVALID;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return FA_OK;
}

static bool list_contains(const char *list, const struct address *address)
{
	const char *p = list;

	while (p != NULL && *p != '\0') {
		size_t len = strcspn(p, ",");
		char entry[FA_ADDRESS_MAX + 8];
		struct range range;

		if (trim_entry(p, len, entry, sizeof(entry)) &&
		    parse_range(entry, &range) &&
		    range_contains(&range, address))
			return true;
		p += len;
		if (*p == ',')
			p++;
	}
	return false;
}

bool fa_proxy_list_contains(const char *list, const char *address)
{
	struct address parsed;

	if (address == NULL || !parse_address(address, &parsed))
		return false;
	return list_contains(list, &parsed);
}

static void format_address(const struct address *address, char *out,
                           size_t out_size)
{
	char text[FA_ADDRESS_MAX];

	if (address->v4)
		inet_ntop(AF_INET, address->bytes + 12, text, sizeof(text));
	else
		inet_ntop(AF_INET6, address->bytes, text, sizeof(text));
	snprintf(out, out_size, "%s", text);
}

/* Finds the client entry of forwarded, read from the right; false when the
 * chosen entry is not a numeric address. */
static bool pick_forwarded(const char *trusted_proxies, const char *forwarded,
                           struct address *client)
{
	size_t end = strlen(forwarded);
	bool found = false;

	while (end > 0) {
		size_t start = end;
		char entry[FA_ADDRESS_MAX + 8];
		struct address address;

		while (start > 0 && forwarded[start - 1] != ',')
			start--;
		if (!trim_entry(forwarded + start, end - start, entry,
		                sizeof(entry)) ||
		    !parse_address(entry, &address))
			return false;
		*client = address;
		found = true;
		if (!list_contains(trusted_proxies, &address))
			return true;
		end = start > 0 ? start - 1 : 0;
	}
	return found;
}

void fa_forwarded_client(const char *trusted_proxies, const char *peer,
                         const char *forwarded, char *out, size_t out_size)
{
	struct address client;

	snprintf(out, out_size, "%s", peer);
	if (trusted_proxies == NULL || trusted_proxies[0] == '\0' ||
	    forwarded == NULL || !fa_proxy_list_contains(trusted_proxies, peer))
		return;
	if (pick_forwarded(trusted_proxies, forwarded, &client))
		format_address(&client, out, out_size);
}
