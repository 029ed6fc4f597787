/* Checks of JSON request bodies and query parameters. Every failing check
 * replies 400 with a problem that names the field and returns false. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service.h"

static bool field_error(struct fa_request *req, const char *type,
                        const char *field, const char *what)
{
	char detail[256];
	const char *title = "Invalid field";

	if (strcmp(type, FA_PROBLEM_MISSING_FIELD) == 0)
		title = "Missing field";
	else if (strcmp(type, FA_PROBLEM_UNKNOWN_FIELD) == 0)
		title = "Unknown field";
	else if (strcmp(type, FA_PROBLEM_INVALID_PARAMETER) == 0)
		title = "Invalid query parameter";
	snprintf(detail, sizeof(detail), "%.64s: %s", field, what);
	fa_reply_problem(req, 400, type, title, detail);
	return false;
}

static bool name_allowed(const char *name, const char *const *allowed)
{
	size_t i;

	for (i = 0; allowed[i] != NULL; i++) {
		if (strcmp(name, allowed[i]) == 0)
			return true;
	}
	return false;
}

bool fa_json_only_fields(struct fa_request *req, const char *const *allowed)
{
	const cJSON *item;
	const cJSON *other;

	if (req->body == NULL)
		return true;
	cJSON_ArrayForEach(item, req->body)
	{
		if (!name_allowed(item->string, allowed))
			return field_error(req, FA_PROBLEM_UNKNOWN_FIELD,
			                   item->string,
			                   "this field is not accepted here");
		/* A repeated name would let two parsers read two values. */
		for (other = item->next; other != NULL; other = other->next) {
			if (strcmp(other->string, item->string) == 0)
				return field_error(req,
				                   FA_PROBLEM_INVALID_FIELD,
				                   item->string,
				                   "the field appears twice");
		}
	}
	return true;
}

/* Looks up field; returns false after replying when a required field is
 * missing. *item is NULL for an absent optional field. */
static bool find_field(struct fa_request *req, const char *field, bool required,
                       const cJSON **item)
{
	*item = NULL;
	if (req->body != NULL)
		*item = cJSON_GetObjectItemCaseSensitive(req->body, field);
	if (*item != NULL && cJSON_IsNull(*item) && !required)
		*item = NULL;
	if (*item == NULL && required)
		return field_error(req, FA_PROBLEM_MISSING_FIELD, field,
		                   "this field is required");
	return true;
}

/*
 * True when the UTF-8 text at s starts with a bidirectional formatting
 * character: U+200E, U+200F, U+202A to U+202E or U+2066 to U+2069. They
 * can make a name display differently from the bytes stored (a label that
 * reads "Truck 7" in a console but compares as another string).
 */
static bool starts_with_bidi(const unsigned char *s)
{
	if (s[0] != 0xe2)
		return false;
	if (s[1] == 0x80)
		return s[2] == 0x8e || s[2] == 0x8f ||
		       (s[2] >= 0xaa && s[2] <= 0xae);
	if (s[1] == 0x81)
		return s[2] >= 0xa6 && s[2] <= 0xa9;
	return false;
}

/* starts_with_bidi reads a byte only after a non-NUL one, so it never
 * reads past the end of s. */
static bool text_valid(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f ||
		    starts_with_bidi((const unsigned char *)s))
			return false;
	}
	return true;
}

/* Checks one string value; on failure writes the reason into why. */
static bool string_valid(const char *value, size_t max_len, unsigned flags,
                         char *why, size_t why_size)
{
	size_t len = strlen(value);

	if (len > max_len) {
		snprintf(why, why_size, "longer than %zu bytes", max_len);
		return false;
	}
	if ((flags & FA_STR_NONEMPTY) && len == 0) {
		snprintf(why, why_size, "must not be empty");
		return false;
	}
	if ((flags & FA_STR_ID) && !fa_id_valid(value)) {
		snprintf(why, why_size,
		         "use 1 to %d characters of A-Z, a-z, 0-9, '_' and "
		         "'-'",
		         FA_ID_MAX);
		return false;
	}
	if ((flags & FA_STR_TEXT) && !text_valid(value)) {
		snprintf(why, why_size,
		         "must not contain control characters or "
		         "bidirectional formatting characters (U+200E, "
		         "U+200F, U+202A to U+202E, U+2066 to U+2069)");
		return false;
	}
	return true;
}

bool fa_json_string(struct fa_request *req, const char *field, bool required,
                    size_t max_len, unsigned flags, const char **out)
{
	const cJSON *item;
	char why[192];

	if (!find_field(req, field, required, &item))
		return false;
	if (item == NULL)
		return true;
	if (!cJSON_IsString(item))
		return field_error(req, FA_PROBLEM_INVALID_FIELD, field,
		                   "must be a string");
	if (!string_valid(item->valuestring, max_len, flags, why, sizeof(why)))
		return field_error(req, FA_PROBLEM_INVALID_FIELD, field, why);
	*out = item->valuestring;
	return true;
}

bool fa_json_int(struct fa_request *req, const char *field, bool required,
                 long long min, long long max, long long *out)
{
	const cJSON *item;
	double value;
	char why[128];

	if (!find_field(req, field, required, &item))
		return false;
	if (item == NULL)
		return true;
	if (!cJSON_IsNumber(item))
		return field_error(req, FA_PROBLEM_INVALID_FIELD, field,
		                   "must be an integer");
	value = item->valuedouble;
	if (!isfinite(value) || floor(value) != value)
		return field_error(req, FA_PROBLEM_INVALID_FIELD, field,
		                   "must be an integer");
	if (value < (double)min || value > (double)max) {
		snprintf(why, sizeof(why), "must be between %lld and %lld", min,
		         max);
		return field_error(req, FA_PROBLEM_INVALID_FIELD, field, why);
	}
	*out = (long long)value;
	return true;
}

bool fa_json_bool(struct fa_request *req, const char *field, bool required,
                  bool *out)
{
	const cJSON *item;

	if (!find_field(req, field, required, &item))
		return false;
	if (item == NULL)
		return true;
	if (!cJSON_IsBool(item))
		return field_error(req, FA_PROBLEM_INVALID_FIELD, field,
		                   "must be true or false");
	*out = cJSON_IsTrue(item);
	return true;
}

bool fa_json_string_array(struct fa_request *req, const char *field,
                          bool required, size_t max_items, size_t max_len,
                          unsigned flags, const cJSON **out)
{
	const cJSON *item;
	const cJSON *element;
	char why[256];
	char reason[192];
	size_t count = 0;

	if (!find_field(req, field, required, &item))
		return false;
	if (item == NULL)
		return true;
	if (!cJSON_IsArray(item))
		return field_error(req, FA_PROBLEM_INVALID_FIELD, field,
		                   "must be an array of strings");
	cJSON_ArrayForEach(element, item)
	{
		if (++count > max_items) {
			snprintf(why, sizeof(why), "more than %zu items",
			         max_items);
			return field_error(req, FA_PROBLEM_INVALID_FIELD, field,
			                   why);
		}
		if (!cJSON_IsString(element))
			return field_error(req, FA_PROBLEM_INVALID_FIELD, field,
			                   "must be an array of strings");
		if (!string_valid(element->valuestring, max_len, flags, reason,
		                  sizeof(reason))) {
			snprintf(why, sizeof(why), "item %zu: %s", count,
			         reason);
			return field_error(req, FA_PROBLEM_INVALID_FIELD, field,
			                   why);
		}
	}
	*out = item;
	return true;
}

bool fa_json_role(struct fa_request *req, const char *field, bool required,
                  enum fa_role *out)
{
	const char *name = NULL;
	enum fa_role role;

	if (!fa_json_string(req, field, required, 32, FA_STR_NONEMPTY, &name))
		return false;
	if (name == NULL)
		return true;
	role = fa_role_parse(name);
	if (role == FA_ROLE_NONE)
		return field_error(req, FA_PROBLEM_INVALID_FIELD, field,
		                   "unknown role; see the list of role "
		                   "names in docs/api.md");
	*out = role;
	return true;
}

bool fa_query_id(struct fa_request *req, const char *key, const char **out)
{
	const char *value = fa_request_query(req, key);

	*out = NULL;
	if (value == NULL)
		return true;
	if (!fa_id_valid(value))
		return field_error(req, FA_PROBLEM_INVALID_PARAMETER, key,
		                   "must be 1 to 64 characters of A-Z, a-z, "
		                   "0-9, '_' and '-'");
	*out = value;
	return true;
}

bool fa_query_int(struct fa_request *req, const char *key, long long min,
                  long long max, long long *out)
{
	const char *value = fa_request_query(req, key);
	char *end = NULL;
	long long number;
	char why[128];

	if (value == NULL)
		return true;
	if (value[0] < '0' || value[0] > '9' || strlen(value) > 19)
		number = -1;
	else
		number = strtoll(value, &end, 10);
	if (number < min || number > max || end == NULL || *end != '\0') {
		snprintf(why, sizeof(why),
		         "must be a decimal integer between %lld and %lld", min,
		         max);
		return field_error(req, FA_PROBLEM_INVALID_PARAMETER, key, why);
	}
	*out = number;
	return true;
}
