/*
 * HTTP server of fleetauthd on libmicrohttpd: a pool of worker threads,
 * each with its own database connection. For every request it checks the
 * size, content type and JSON body, finds the route, authenticates the
 * caller, runs the handler and writes one JSON log line. Bodies and
 * Authorization headers are never logged.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "core.h"
#include "forwarded.h"
#include "metrics.h"

/* Per-connection memory of libmicrohttpd: request line, headers and read
 * buffer. Bodies are copied into struct upload and do not count here. */
#define CONNECTION_MEMORY_LIMIT (64 * 1024)
#define CONNECTION_TIMEOUT_SECONDS 30
#define CONNECTION_LIMIT 1024

struct fa_header {
	char *name;
	char *value;
	struct fa_header *next;
};

/* Request body collected across calls of the access handler. */
struct upload {
	char *data;
	size_t len;
	struct timespec started;
};

/* ------------------------------------------------------------------ */
/* Replies                                                             */
/* ------------------------------------------------------------------ */

static void set_response(struct fa_request *req, int status,
                         const char *content_type, char *body, size_t len)
{
	free(req->response_body);
	req->status = status;
	req->content_type = content_type;
	req->response_body = body;
	req->response_len = len;
}

void fa_reply_json(struct fa_request *req, int status, cJSON *body)
{
	char *text;

	if (body == NULL) {
		fa_reply_status(req, 500, NULL);
		return;
	}
	text = cJSON_PrintUnformatted(body);
	cJSON_Delete(body);
	if (text == NULL) {
		fa_reply_status(req, 500, NULL);
		return;
	}
	set_response(req, status, "application/json", text, strlen(text));
}

void fa_reply_problem(struct fa_request *req, int status, const char *type,
                      const char *title, const char *detail)
{
	cJSON *problem = cJSON_CreateObject();
	char *text = NULL;

	if (problem != NULL && cJSON_AddStringToObject(problem, "type", type) &&
	    cJSON_AddStringToObject(problem, "title", title) &&
	    cJSON_AddNumberToObject(problem, "status", status) &&
	    (detail == NULL ||
	     cJSON_AddStringToObject(problem, "detail", detail)))
		text = cJSON_PrintUnformatted(problem);
	cJSON_Delete(problem);
	if (text == NULL) {
		/* Out of memory: send the status without a body. */
		set_response(req, status, "application/problem+json", NULL, 0);
		return;
	}
	set_response(req, status, "application/problem+json", text,
	             strlen(text));
}

struct standard_problem {
	int status;
	const char *type;
	const char *title;
};

static const struct standard_problem standard_problems[] = {
        {400, FA_PROBLEM_BAD_REQUEST, "Bad request"},
        {401, FA_PROBLEM_UNAUTHENTICATED, "Authentication required"},
        {403, FA_PROBLEM_FORBIDDEN, "Forbidden"},
        {404, FA_PROBLEM_NOT_FOUND, "Not found"},
        {405, FA_PROBLEM_METHOD_NOT_ALLOWED, "Method not allowed"},
        {409, FA_PROBLEM_CONFLICT, "Conflict"},
        {413, FA_PROBLEM_TOO_LARGE, "Request body too large"},
        {415, FA_PROBLEM_UNSUPPORTED_MEDIA_TYPE, "Unsupported media type"},
        {429, FA_PROBLEM_THROTTLED, "Too many requests"},
        {503, FA_PROBLEM_UNAVAILABLE, "Service unavailable"},
};

/* Detail of every 404 sent through fa_reply_status. Handlers pass details
 * such as "no such load" for a missing object and "no such carrier or
 * object" for another carrier's, so one fixed text keeps the two bodies
 * byte-identical and the other carrier's ids secret. */
#define NOT_FOUND_DETAIL "the object does not exist or is not visible to you"

void fa_reply_status(struct fa_request *req, int status, const char *detail)
{
	size_t i;

	if (status == 404)
		detail = NOT_FOUND_DETAIL;

	for (i = 0;
	     i < sizeof(standard_problems) / sizeof(standard_problems[0]);
	     i++) {
		const struct standard_problem *p = &standard_problems[i];

		if (p->status == status) {
			fa_reply_problem(req, status, p->type, p->title,
			                 detail);
			return;
		}
	}
	fa_reply_problem(req, 500, FA_PROBLEM_INTERNAL, "Internal error", NULL);
}

void fa_reply_bytes(struct fa_request *req, int status,
                    const char *content_type, const void *data, size_t len)
{
	char *copy = malloc(len + 1);

	if (copy == NULL) {
		fa_reply_status(req, 500, NULL);
		return;
	}
	memcpy(copy, data, len);
	copy[len] = '\0';
	set_response(req, status, content_type, copy, len);
}

void fa_reply_header(struct fa_request *req, const char *name,
                     const char *value)
{
	struct fa_header *header = calloc(1, sizeof(*header));

	if (header == NULL)
		return;
	header->name = strdup(name);
	header->value = strdup(value);
	if (header->name == NULL || header->value == NULL) {
		free(header->name);
		free(header->value);
		free(header);
		return;
	}
	header->next = req->headers;
	req->headers = header;
}

void fa_reply_db_error(struct fa_request *req, fa_result result)
{
	switch (result) {
	case FA_ERR_IO:
		fa_reply_status(req, 503,
		                "the database is unavailable; retry "
		                "later");
		break;
	case FA_ERR_DENIED:
		fa_reply_status(req, 409, "the object already exists");
		break;
	case FA_ERR_INVALID:
		fa_reply_status(req, 400, "the database rejected a value");
		break;
	case FA_ERR_NOT_FOUND:
		fa_reply_status(req, 404, NULL);
		break;
	default:
		fa_reply_status(req, 500, NULL);
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Request accessors and logging                                       */
/* ------------------------------------------------------------------ */

const char *fa_request_query(struct fa_request *req, const char *key)
{
	return MHD_lookup_connection_value(req->connection,
	                                   MHD_GET_ARGUMENT_KIND, key);
}

const char *fa_request_header(struct fa_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
	                                   name);
}

void fa_request_log(struct fa_request *req, enum fa_log_level level,
                    const char *format, ...)
{
	char message[512];
	va_list args;

	va_start(args, format);
	vsnprintf(message, sizeof(message), format, args);
	va_end(args);
	fa_log(level,
	       (const char *[]){"request_id", req->request_id, "caller",
	                        req->caller.id, NULL},
	       "%s", message);
}

/* ------------------------------------------------------------------ */
/* Request checks                                                      */
/* ------------------------------------------------------------------ */

static void new_request_id(struct fa_request *req)
{
	const char *incoming = fa_request_header(req, "X-Request-Id");
	uint8_t random[FA_REQUEST_ID_LEN / 2];

	if (incoming != NULL && strlen(incoming) <= FA_REQUEST_ID_LEN &&
	    fa_id_valid(incoming)) {
		snprintf(req->request_id, sizeof(req->request_id), "%s",
		         incoming);
		return;
	}
	if (fa_random_bytes(random, sizeof(random)) != FA_OK)
		memset(random, 0, sizeof(random));
	fa_hex_encode(random, sizeof(random), req->request_id);
}

static void client_address(struct MHD_Connection *connection, char *out,
                           size_t out_size)
{
	const union MHD_ConnectionInfo *info;
	socklen_t len;

	snprintf(out, out_size, "unknown");
	info = MHD_get_connection_info(connection,
	                               MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (info == NULL || info->client_addr == NULL)
		return;
	len = info->client_addr->sa_family == AF_INET6
	              ? sizeof(struct sockaddr_in6)
	              : sizeof(struct sockaddr_in);
	if (getnameinfo(info->client_addr, len, out, out_size, NULL, 0,
	                NI_NUMERICHOST) != 0)
		snprintf(out, out_size, "unknown");
}

/* X-Forwarded-For values of one request, joined with commas in the order
 * they arrived. Longer header sets are cut off and then fail to parse. */
struct forwarded_values {
	char text[1024];
	size_t len;
	bool overflow;
};

static enum MHD_Result collect_forwarded(void *cls, enum MHD_ValueKind kind,
                                         const char *key, const char *value)
{
	struct forwarded_values *values = cls;
	size_t len;

	(void)kind;
	if (key == NULL || value == NULL ||
	    strcasecmp(key, "X-Forwarded-For") != 0)
		return MHD_YES;
	len = strlen(value);
	if (values->len + len + 2 > sizeof(values->text)) {
		values->overflow = true;
		return MHD_NO;
	}
	if (values->len > 0)
		values->text[values->len++] = ',';
	memcpy(values->text + values->len, value, len + 1);
	values->len += len;
	return MHD_YES;
}

/*
 * Sets req->client_address: the peer address, or the X-Forwarded-For entry
 * chosen by fa_forwarded_client when the peer is a trusted proxy. The
 * throttle, audit records and logs use it. metrics_allow keeps checking
 * the TCP peer (req->peer_address), because a forwarded address is only as
 * trustworthy as the proxy in front.
 */
static void set_client_address(struct fa_request *req, char *out,
                               size_t out_size)
{
	const char *trusted = req->svc->config.trusted_proxies;
	struct forwarded_values values;

	snprintf(out, out_size, "%s", req->peer_address);
	req->client_address = out;
	if (trusted == NULL || trusted[0] == '\0')
		return;
	memset(&values, 0, sizeof(values));
	MHD_get_connection_values(req->connection, MHD_HEADER_KIND,
	                          collect_forwarded, &values);
	if (values.len == 0 || values.overflow)
		return;
	fa_forwarded_client(trusted, req->peer_address, values.text, out,
	                    out_size);
}

/* True for "application/json", with optional parameters of which a
 * charset must be utf-8. */
static bool content_type_is_json(const char *value)
{
	const char *media = "application/json";
	const char *charset;
	size_t len = strlen(media);

	if (value == NULL || strncasecmp(value, media, len) != 0)
		return false;
	value += len;
	while (*value == ' ' || *value == '\t')
		value++;
	if (*value == '\0')
		return true;
	if (*value != ';')
		return false;
	for (charset = value; *charset != '\0'; charset++) {
		if (strncasecmp(charset, "charset=", 8) == 0)
			break;
	}
	if (*charset == '\0')
		return true;
	charset += strlen("charset=");
	if (*charset == '"')
		charset++;
	return strncasecmp(charset, "utf-8", 5) == 0;
}

/* Strict UTF-8 check: no overlong forms, surrogates or values past
 * U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t extra;
		unsigned long cp;
		size_t k;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			extra = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			extra = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			extra = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + extra >= len)
			return false;
		for (k = 1; k <= extra; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((extra == 2 && cp < 0x800) ||
		    (extra == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += extra + 1;
	}
	return true;
}

/*
 * True when the body contains a NUL: a raw zero byte, or a \u0000 escape
 * inside a string. cJSON stores strings NUL-terminated, so "a\u0000b"
 * would silently become "a".
 */
static bool body_has_nul(const char *data, size_t len)
{
	bool in_string = false;
	size_t i;

	for (i = 0; i < len; i++) {
		if (data[i] == '\0')
			return true;
		if (data[i] == '"') {
			in_string = !in_string;
			continue;
		}
		if (!in_string || data[i] != '\\' || i + 1 >= len)
			continue;
		if (data[i + 1] == 'u' && i + 5 < len &&
		    strncmp(&data[i + 2], "0000", 4) == 0)
			return true;
		i++; /* skip the escaped character */
	}
	return false;
}

/* True for the C0 control characters and DEL. */
static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/*
 * Decodes the %HH escapes of a path or query argument in place. A decoded
 * control character, an encoded NUL above all, would cut the C string short
 * ("/v1/users/x3%00-ignored" would name user x3), so each one is stored as
 * DEL and reject_control_characters turns the request away with 400.
 */
static size_t unescape_url(void *cls, struct MHD_Connection *connection,
                           char *text)
{
	size_t len = MHD_http_unescape(text);
	size_t i;

	(void)cls;
	(void)connection;
	for (i = 0; i < len; i++) {
		if (is_control((unsigned char)text[i]))
			text[i] = 0x7f;
	}
	return len;
}

static bool has_control(const char *text)
{
	for (; text != NULL && *text != '\0'; text++) {
		if (is_control((unsigned char)*text))
			return true;
	}
	return false;
}

static enum MHD_Result find_control(void *cls, enum MHD_ValueKind kind,
                                    const char *key, const char *value)
{
	bool *found = cls;

	(void)kind;
	if (has_control(key) || has_control(value)) {
		*found = true;
		return MHD_NO;
	}
	return MHD_YES;
}

/* Replies 400 and returns true when the decoded path or a query parameter
 * contains a control character. */
static bool reject_control_characters(struct fa_request *req)
{
	bool found = has_control(req->path);

	if (!found)
		MHD_get_connection_values(req->connection,
		                          MHD_GET_ARGUMENT_KIND, find_control,
		                          &found);
	if (!found)
		return false;
	fa_reply_status(req, 400,
	                "the path or a query parameter contains a control "
	                "character, such as an encoded NUL (%00)");
	return true;
}

/* True when arrays and objects in data nest deeper than cJSON parses
 * (CJSON_NESTING_LIMIT levels). Brackets inside strings do not count. */
static bool nested_too_deeply(const char *data, size_t len)
{
	bool in_string = false;
	size_t depth = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		char c = data[i];

		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '[' || c == '{') {
			if (++depth > CJSON_NESTING_LIMIT)
				return true;
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		}
	}
	return false;
}

/* Parses the body into req->body; replies and returns NULL on error. */
static cJSON *parse_body(struct fa_request *req, struct upload *up)
{
	const char *end = NULL;
	cJSON *json;

	if (!content_type_is_json(fa_request_header(req, "Content-Type"))) {
		fa_reply_status(req, 415,
		                "send the body with Content-Type: "
		                "application/json");
		return NULL;
	}
	if (!utf8_valid((const unsigned char *)up->data, up->len) ||
	    body_has_nul(up->data, up->len)) {
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_JSON,
		                 "Invalid JSON",
		                 "the body must be UTF-8 JSON without NUL "
		                 "characters");
		return NULL;
	}
	json = cJSON_ParseWithLengthOpts(up->data, up->len, &end, false);
	if (json == NULL && nested_too_deeply(up->data, up->len)) {
		char detail[96];

		snprintf(detail, sizeof(detail),
		         "the body is nested too deeply: use at most %d "
		         "levels of arrays and objects",
		         CJSON_NESTING_LIMIT);
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_JSON,
		                 "Invalid JSON", detail);
		return NULL;
	}
	if (json != NULL)
		end += strspn(end, " \t\r\n");
	if (json == NULL || end != up->data + up->len ||
	    !cJSON_IsObject(json)) {
		cJSON_Delete(json);
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_JSON,
		                 "Invalid JSON",
		                 "the body must be one JSON object");
		return NULL;
	}
	return json;
}

/* Overwrites every string of a parsed body before it is freed, because
 * bodies carry passwords, codes and refresh tokens. */
/* NOLINTNEXTLINE(misc-no-recursion): cJSON stops parsing at 1000 levels. */
static void wipe_json(cJSON *item)
{
	for (; item != NULL; item = item->next) {
		if (item->valuestring != NULL)
			fa_wipe(item->valuestring, strlen(item->valuestring));
		if (item->string != NULL)
			fa_wipe(item->string, strlen(item->string));
		wipe_json(item->child);
	}
}

static bool scope_allowed(const struct fa_request *req)
{
	if (req->caller.kind != FA_CALLER_API_KEY)
		return true;
	if (req->route->scope == NULL)
		return fa_caller_has_scope(&req->caller, "*");
	return fa_caller_has_scope(&req->caller, req->route->scope);
}

/* Takes the worker's database connection unless the route needs none;
 * replies 503 and returns false when the database is unreachable. */
static bool open_database(struct fa_request *req)
{
	if (req->route->flags & FA_ROUTE_NO_DB)
		return true;
	req->db = fa_db_worker(req->svc);
	if (req->db != NULL)
		return true;
	fa_request_log(req, FA_LOG_ERROR, "database unreachable for %s %s",
	               req->method, req->route->pattern);
	fa_reply_status(req, 503, "the database is unavailable; retry later");
	return false;
}

/* Authenticates the caller of a non-public route and checks the API-key
 * scope; replies 401 or 403 and returns false on failure. */
static bool authenticate(struct fa_request *req)
{
	const struct fa_route *route = req->route;

	if (route->flags & FA_ROUTE_PUBLIC)
		return true;
	if (fa_caller_authenticate(req) != FA_OK)
		return false;
	if (scope_allowed(req))
		return true;
	fa_audit(req, "request.scope", route->pattern, "denied", NULL);
	fa_reply_status(req, 403,
	                route->scope != NULL
	                        ? "the API key lacks the scope this route needs"
	                        : "this route needs an API key with scope *");
	return false;
}

/* Parses the body of routes that take one, after authentication so that
 * anonymous callers never reach the JSON parser. Replies 400 or 415 and
 * returns false on failure. */
static bool read_body(struct fa_request *req, struct upload *up,
                      cJSON **body_out)
{
	unsigned flags = req->route->flags;

	if (up->len > 0 &&
	    !(flags & (FA_ROUTE_BODY | FA_ROUTE_BODY_OPTIONAL))) {
		fa_reply_status(req, 400, "this route takes no request body");
		return false;
	}
	if (up->len == 0 && !(flags & FA_ROUTE_BODY))
		return true;
	*body_out = parse_body(req, up);
	if (*body_out == NULL)
		return false;
	req->body = *body_out;
	return true;
}

static void reply_method_not_allowed(struct fa_request *req)
{
	char allow[128];
	char detail[192];

	fa_route_allowed_methods(req->path, allow, sizeof(allow));
	snprintf(detail, sizeof(detail), "use one of: %s", allow);
	fa_reply_header(req, "Allow", allow);
	fa_reply_status(req, 405, detail);
}

/*
 * Runs every step of one request, the handler included. A failing step
 * replies itself, so req always has a response on return.
 */
static void dispatch(struct fa_request *req, struct upload *up,
                     cJSON **body_out)
{
	const struct fa_route *route;
	char *path_copy;
	bool path_known = false;

	if (reject_control_characters(req))
		return;
	path_copy = strdup(req->path);
	if (path_copy == NULL) {
		fa_reply_status(req, 500, NULL);
		return;
	}
	route = fa_route_find(req->method, path_copy, req->params, &path_known);
	if (route == NULL) {
		if (path_known)
			reply_method_not_allowed(req);
		else
			fa_reply_status(req, 404, "no such resource");
		goto out;
	}
	req->route = route;
	if (!open_database(req) || !authenticate(req) ||
	    !read_body(req, up, body_out))
		goto out;
	route->handler(req);
	fa_db_rollback(req->db); /* a handler that forgot to commit */
	if (req->status == 0) {
		fa_request_log(req, FA_LOG_ERROR,
		               "handler of %s %s sent no reply", route->method,
		               route->pattern);
		fa_reply_status(req, 500, NULL);
	}
out:
	free(path_copy);
}

static double elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) * 1000.0 +
	       (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

static void log_request(const struct fa_request *req, const struct upload *up)
{
	char status[8];
	char duration[32];

	snprintf(status, sizeof(status), "%d", req->status);
	snprintf(duration, sizeof(duration), "%.1f", elapsed_ms(&up->started));
	fa_log(req->status >= 500 ? FA_LOG_WARNING : FA_LOG_INFO,
	       (const char *[]){
	               "request_id", req->request_id, "method", req->method,
	               "route", req->route != NULL ? req->route->pattern : "-",
	               "status", status, "duration_ms", duration, "caller",
	               req->caller.id[0] != '\0' ? req->caller.id : "-",
	               "address", req->client_address, NULL},
	       "request");
}

static bool has_header(const struct fa_request *req, const char *name)
{
	const struct fa_header *header;

	for (header = req->headers; header != NULL; header = header->next)
		if (strcasecmp(header->name, name) == 0)
			return true;
	return false;
}

static enum MHD_Result send_response(struct MHD_Connection *connection,
                                     struct fa_request *req)
{
	struct MHD_Response *response;
	struct fa_header *header;
	enum MHD_Result ret;

	if (req->response_body != NULL) {
		response = MHD_create_response_from_buffer(
		        req->response_len, req->response_body,
		        MHD_RESPMEM_MUST_FREE);
		if (response != NULL)
			req->response_body = NULL;
	} else {
		response = MHD_create_response_from_buffer(
		        0, (void *)"", MHD_RESPMEM_PERSISTENT);
	}
	if (response == NULL)
		return MHD_NO;
	if (req->content_type != NULL)
		MHD_add_response_header(response, "Content-Type",
		                        req->content_type);
	MHD_add_response_header(response, "X-Request-Id", req->request_id);
	/* Responses carry tokens and account data, so nothing is cached
	 * unless the handler set its own Cache-Control (the JWKS does). */
	if (!has_header(req, "Cache-Control"))
		MHD_add_response_header(response, "Cache-Control", "no-store");
	MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
	for (header = req->headers; header != NULL; header = header->next)
		MHD_add_response_header(response, header->name, header->value);
	ret = MHD_queue_response(connection, (unsigned int)req->status,
	                         response);
	MHD_destroy_response(response);
	return ret;
}

static void free_request(struct fa_request *req)
{
	struct fa_header *header = req->headers;

	while (header != NULL) {
		struct fa_header *next = header->next;

		free(header->name);
		free(header->value);
		free(header);
		header = next;
	}
	free(req->response_body);
}

/* Handles a complete request (or one rejected for its size) and queues
 * the response. */
static enum MHD_Result respond(struct fa_service *svc,
                               struct MHD_Connection *connection,
                               const char *url, const char *method,
                               struct upload *up, bool too_large)
{
	struct fa_request req;
	char peer[INET6_ADDRSTRLEN + 1];
	char address[INET6_ADDRSTRLEN + 1];
	cJSON *body = NULL;
	enum MHD_Result ret;

	memset(&req, 0, sizeof(req));
	req.svc = svc;
	req.connection = connection;
	req.method = method;
	req.path = url;
	client_address(connection, peer, sizeof(peer));
	req.peer_address = peer;
	set_client_address(&req, address, sizeof(address));
	new_request_id(&req);

	if (too_large) {
		char detail[96];

		snprintf(detail, sizeof(detail),
		         "the body is larger than %lld bytes",
		         svc->config.max_body_bytes);
		fa_reply_status(&req, 413, detail);
	} else {
		dispatch(&req, up, &body);
	}
	if (body != NULL) {
		wipe_json(body);
		cJSON_Delete(body);
	}
	if (up->data != NULL)
		fa_wipe(up->data, up->len);
	ret = send_response(connection, &req);
	fa_metrics_request(req.route, method, req.status,
	                   elapsed_ms(&up->started) / 1000.0);
	log_request(&req, up);
	free_request(&req);
	return ret;
}

static bool declared_length_too_large(struct MHD_Connection *connection,
                                      long long max)
{
	const char *value = MHD_lookup_connection_value(
	        connection, MHD_HEADER_KIND, "Content-Length");
	char *end = NULL;
	unsigned long long length;

	if (value == NULL)
		return false;
	length = strtoull(value, &end, 10);
	return end == value || *end != '\0' || length > (unsigned long long)max;
}

static enum MHD_Result append_upload(struct fa_service *svc, struct upload *up,
                                     const char *data, size_t *size)
{
	size_t max = (size_t)svc->config.max_body_bytes;
	char *grown;

	if (*size > max - up->len) {
		/* libmicrohttpd cannot queue a response while the body is
		 * still arriving, so a chunked body past the limit closes the
		 * connection. Bodies with Content-Length get a 413. */
		fa_log(FA_LOG_WARNING, NULL,
		       "closing connection: chunked request body passed "
		       "max_body_bytes (%lld)",
		       svc->config.max_body_bytes);
		return MHD_NO;
	}
	grown = realloc(up->data, up->len + *size + 1);
	if (grown == NULL)
		return MHD_NO;
	up->data = grown;
	memcpy(up->data + up->len, data, *size);
	up->len += *size;
	up->data[up->len] = '\0';
	*size = 0;
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct fa_service *svc = cls;
	struct upload *up = *con_cls;

	(void)version;
	if (up == NULL) {
		up = calloc(1, sizeof(*up));
		if (up == NULL)
			return MHD_NO;
		clock_gettime(CLOCK_MONOTONIC, &up->started);
		*con_cls = up;
		if (declared_length_too_large(connection,
		                              svc->config.max_body_bytes))
			return respond(svc, connection, url, method, up, true);
		return MHD_YES;
	}
	if (*upload_data_size > 0)
		return append_upload(svc, up, upload_data, upload_data_size);
	return respond(svc, connection, url, method, up, false);
}

static void on_completed(void *cls, struct MHD_Connection *connection,
                         void **con_cls, enum MHD_RequestTerminationCode code)
{
	struct upload *up = *con_cls;

	(void)cls;
	(void)connection;
	(void)code;
	if (up == NULL)
		return;
	if (up->data != NULL)
		fa_wipe(up->data, up->len);
	free(up->data);
	free(up);
	*con_cls = NULL;
}

static void on_mhd_error(void *cls, const char *format, va_list args)
        __attribute__((format(printf, 2, 0)));

static void on_mhd_error(void *cls, const char *format, va_list args)
{
	char message[512];

	(void)cls;
	vsnprintf(message, sizeof(message), format, args);
	fa_log(FA_LOG_WARNING, NULL, "libmicrohttpd: %.*s",
	       (int)strcspn(message, "\n"), message);
}

/* Fills addr from listen_address and listen_port. */
static fa_result listen_socket_address(const struct fa_service *svc,
                                       struct sockaddr_storage *addr,
                                       bool *ipv6)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
	uint16_t port = htons((uint16_t)svc->config.listen_port);

	memset(addr, 0, sizeof(*addr));
	if (inet_pton(AF_INET, svc->config.listen_address, &v4->sin_addr) ==
	    1) {
		v4->sin_family = AF_INET;
		v4->sin_port = port;
		*ipv6 = false;
		return FA_OK;
	}
	if (inet_pton(AF_INET6, svc->config.listen_address, &v6->sin6_addr) ==
	    1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = port;
		*ipv6 = true;
		return FA_OK;
	}
	return FA_ERR_INVALID;
}

int fa_http_serve(struct fa_service *svc)
{
	struct sockaddr_storage addr;
	struct MHD_Daemon *daemon;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	                     MHD_USE_ERROR_LOG;
	sigset_t signals;
	bool ipv6 = false;
	int signal_number = 0;

	if (listen_socket_address(svc, &addr, &ipv6) != FA_OK) {
		fprintf(stderr,
		        "fleetauthd: invalid listen_address \"%s\": use a "
		        "numeric IPv4 or IPv6 address\n",
		        svc->config.listen_address);
		return 1;
	}
	if (ipv6)
		flags |= MHD_USE_IPv6;
	sigemptyset(&signals);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);
	/* Fails only for an invalid signal number. */
	(void)signal(SIGPIPE, SIG_IGN);

	/* The logger comes first so that warnings about the later options
	 * already go through it. */
	daemon = MHD_start_daemon(
	        flags, (uint16_t)svc->config.listen_port, NULL, NULL,
	        on_request, svc, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, NULL,
	        MHD_OPTION_UNESCAPE_CALLBACK, unescape_url, NULL,
	        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
	        MHD_OPTION_THREAD_POOL_SIZE,
	        (unsigned int)svc->config.worker_threads,
	        MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	        (size_t)CONNECTION_MEMORY_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
	        (unsigned int)CONNECTION_TIMEOUT_SECONDS,
	        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTION_LIMIT,
	        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	        MHD_OPTION_END);
	if (daemon == NULL) {
		fprintf(stderr,
		        "fleetauthd: cannot listen on %s port %lld: check "
		        "that the address is local and the port is free\n",
		        svc->config.listen_address, svc->config.listen_port);
		return 1;
	}
	fa_log(FA_LOG_INFO, NULL,
	       "fleetauthd %s listening on %s port %lld with %lld workers",
	       FLEETAUTH_VERSION, svc->config.listen_address,
	       svc->config.listen_port, svc->config.worker_threads);
	sigwait(&signals, &signal_number);
	fa_log(FA_LOG_INFO, NULL, "stopping on signal %d", signal_number);
	MHD_stop_daemon(daemon);
	fa_log(FA_LOG_INFO, NULL, "stopped");
	return 0;
}
