#include "fa_ids.h"

#include <string.h>

static bool id_char_valid(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-';
}

bool fa_id_valid_n(const char *s, size_t len)
{
	if (s == NULL || len == 0 || len > FA_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!id_char_valid((unsigned char)s[i]))
			return false;
	}
	return true;
}

bool fa_id_valid(const char *s)
{
	if (s == NULL)
		return false;
	/* Looks at most one byte past FA_ID_MAX, so a long string costs
	 * nothing extra. */
	size_t len = strnlen(s, FA_ID_MAX + 1);
	return fa_id_valid_n(s, len);
}
