/*
 * Fuzzes the request-body and query-parameter checks of fleetauthd
 * (authsvc/validate.c). The input is "query value\nJSON body". Every member
 * of the parsed body is run through every field validator, and the query
 * value through both query validators. A validator that returns true must
 * not have replied, and the value it hands back must meet its rules. A
 * validator that returns false must have replied exactly one 400 problem.
 *
 * fa_reply_problem and fa_request_query belong to authsvc/http.c, which
 * needs a running libmicrohttpd server, so this file defines both: the first
 * records the reply, the second returns the fuzzed query value.
 *
 * NOTE: http.c's own body checks (UTF-8, NUL bytes, Content-Type, size) are
 * static functions and run only inside the HTTP server, so they are not
 * fuzzed here; tests/integration/hostile covers them through real requests.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "service.h"
#include "fuzz_check.h"

static int reply_count;
static int reply_status;
static const char *query_value;

void fa_reply_problem(struct fa_request *req, int status, const char *type,
                      const char *title, const char *detail)
{
	(void)req;
	FUZZ_CHECK(strncmp(type, FA_PROBLEM_BASE, strlen(FA_PROBLEM_BASE)) ==
	           0);
	FUZZ_CHECK(title != NULL && title[0] != '\0');
	FUZZ_CHECK(detail == NULL || strlen(detail) < 256);
	reply_count++;
	reply_status = status;
}

const char *fa_request_query(struct fa_request *req, const char *key)
{
	(void)req;
	(void)key;
	return query_value;
}

static void reset_reply(void)
{
	reply_count = 0;
	reply_status = 0;
}

/* A validator returned ok: no reply, or exactly one 400 when it failed. */
static void check_reply(bool ok)
{
	if (ok) {
		FUZZ_CHECK(reply_count == 0);
	} else {
		FUZZ_CHECK(reply_count == 1);
		FUZZ_CHECK(reply_status == 400);
	}
	reset_reply();
}

static bool has_control(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	}
	return false;
}

static void check_field(struct fa_request *req, const char *field)
{
	const char *text = NULL;
	long long number = -7;
	bool flag = false;
	const cJSON *array = NULL;
	enum fa_role role = FA_ROLE_NONE;
	bool ok;

	for (int required = 0; required <= 1; required++) {
		text = NULL;
		ok = fa_json_string(req, field, required, 64,
		                    FA_STR_ID | FA_STR_NONEMPTY, &text);
		check_reply(ok);
		if (ok && text != NULL)
			FUZZ_CHECK(fa_id_valid(text));

		text = NULL;
		ok = fa_json_string(req, field, required, 200, FA_STR_TEXT,
		                    &text);
		check_reply(ok);
		if (ok && text != NULL) {
			FUZZ_CHECK(strlen(text) <= 200);
			FUZZ_CHECK(!has_control(text));
		}

		number = -7;
		ok = fa_json_int(req, field, required, 0, 1000, &number);
		check_reply(ok);
		if (ok)
			FUZZ_CHECK(number == -7 ||
			           (number >= 0 && number <= 1000));

		number = 0;
		ok = fa_json_int(req, field, required, INT64_MIN, INT64_MAX,
		                 &number);
		check_reply(ok);

		ok = fa_json_bool(req, field, required, &flag);
		check_reply(ok);

		array = NULL;
		ok = fa_json_string_array(req, field, required, 4, 16,
		                          FA_STR_ID, &array);
		check_reply(ok);
		if (ok && array != NULL) {
			const cJSON *item;

			FUZZ_CHECK(cJSON_GetArraySize(array) <= 4);
			cJSON_ArrayForEach(item, array)
			{
				FUZZ_CHECK(cJSON_IsString(item));
				FUZZ_CHECK(strlen(item->valuestring) <= 16);
				FUZZ_CHECK(fa_id_valid(item->valuestring));
			}
		}

		role = FA_ROLE_NONE;
		ok = fa_json_role(req, field, required, &role);
		check_reply(ok);
		if (ok && cJSON_GetObjectItemCaseSensitive(req->body, field) &&
		    !cJSON_IsNull(
		            cJSON_GetObjectItemCaseSensitive(req->body, field)))
			FUZZ_CHECK(role != FA_ROLE_NONE);
	}
}

static void check_query(struct fa_request *req)
{
	const char *id = NULL;
	long long number = -7;
	bool ok;

	ok = fa_query_id(req, "carrier", &id);
	check_reply(ok);
	if (ok && id != NULL)
		FUZZ_CHECK(fa_id_valid(id));

	ok = fa_query_int(req, "limit", 1, 500, &number);
	check_reply(ok);
	if (ok)
		FUZZ_CHECK(number == -7 || (number >= 1 && number <= 500));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const allowed[] = {"id", "name", "role", NULL};
	struct fa_request req;
	const uint8_t *newline = memchr(data, '\n', size);
	size_t query_len = newline ? (size_t)(newline - data) : 0;
	char *query = NULL;
	cJSON *body = NULL;
	const cJSON *member;

	memset(&req, 0, sizeof(req));
	reset_reply();
	query = strndup((const char *)data, query_len);
	FUZZ_CHECK(query != NULL);
	query_value = newline ? query : NULL;
	check_query(&req);

	if (newline != NULL)
		body = cJSON_ParseWithLength((const char *)newline + 1,
		                             size - query_len - 1);
	if (cJSON_IsObject(body)) {
		req.body = body;
		check_reply(fa_json_only_fields(&req, allowed));
		cJSON_ArrayForEach(member, body)
		{
			check_field(&req, member->string);
		}
		check_field(&req, "absent");
	}
	cJSON_Delete(body);
	free(query);
	return 0;
}
