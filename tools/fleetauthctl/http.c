/* HTTP client for fleetauthctl over libcurl, and problem rendering. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <curl/curl.h>

#include "ctl.h"
#include "fa_crypto.h"

#define CTL_CONNECT_TIMEOUT 5 /* seconds, capped by --timeout */

struct body_buffer {
	char *data;
	size_t len;
	bool too_large;
};

static size_t on_body(char *ptr, size_t size, size_t count, void *user)
{
	struct body_buffer *buffer = user;
	size_t add = size * count;
	char *grown;

	if (buffer->len + add > CTL_MAX_RESPONSE) {
		buffer->too_large = true;
		return 0;
	}
	grown = realloc(buffer->data, buffer->len + add + 1);
	if (grown == NULL)
		return 0;
	memcpy(grown + buffer->len, ptr, add);
	buffer->data = grown;
	buffer->len += add;
	buffer->data[buffer->len] = '\0';
	return add;
}

static size_t on_header(char *ptr, size_t size, size_t count, void *user)
{
	struct ctl_response *resp = user;
	size_t len = size * count;
	const char name[] = "retry-after:";
	size_t name_len = sizeof(name) - 1;

	if (len > name_len && strncasecmp(ptr, name, name_len) == 0) {
		size_t start = name_len;
		size_t end = len;

		while (start < end && ptr[start] == ' ')
			start++;
		while (end > start && isspace((unsigned char)ptr[end - 1]))
			end--;
		if (end - start < sizeof(resp->retry_after)) {
			memcpy(resp->retry_after, ptr + start, end - start);
			resp->retry_after[end - start] = '\0';
		}
	}
	return len;
}

void ctl_response_free(struct ctl_response *resp)
{
	cJSON_Delete(resp->json);
	if (resp->body != NULL) {
		/* Responses can carry tokens and one-time secrets. */
		fa_wipe(resp->body, resp->body_len);
		free(resp->body);
	}
	memset(resp, 0, sizeof(*resp));
}

static const char *source_name(enum ctl_credential_source source, bool is_token)
{
	switch (source) {
	case CTL_CRED_FLAG:
		return is_token ? "--token" : "--api-key";
	case CTL_CRED_ENV:
		return is_token ? "FLEETAUTH_TOKEN" : "FLEETAUTH_API_KEY";
	case CTL_CRED_ENV_FALLBACK:
		return "FLEETAUTH_ADMIN_KEY";
	case CTL_CRED_CONFIG:
		return "the config file";
	case CTL_CRED_LOGIN:
		return "the credentials file";
	case CTL_CRED_NONE:
		break;
	}
	return "nowhere";
}

/* Picks the credential from the highest-ranked source; a token wins over
 * an API key from the same source. Returns NULL when there is none. */
static const char *pick_credential(const struct ctl_settings *settings,
                                   bool *is_token)
{
	bool have_token = settings->token != NULL;
	bool have_key = settings->api_key != NULL;

	if (have_token &&
	    (!have_key || settings->token_source <= settings->api_key_source)) {
		*is_token = true;
		return settings->token;
	}
	*is_token = false;
	return have_key ? settings->api_key : NULL;
}

/*
 * True when the host of url, as libcurl parses it (so that userinfo such as
 * "http://127.0.0.1@example.net/" is not mistaken for the host), is an IPv4
 * address in 127.0.0.0/8, ::1 or localhost.
 */
bool ctl_url_is_loopback(const char *url)
{
	CURLU *handle = curl_url();
	char *host = NULL;
	struct in_addr address;
	bool loopback = false;

	if (handle == NULL)
		return false;
	if (curl_url_set(handle, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(handle, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
		loopback = true;
	else if (inet_pton(AF_INET, host, &address) == 1)
		loopback = (ntohl(address.s_addr) >> 24) == 127;
out:
	curl_free(host);
	curl_url_cleanup(handle);
	return loopback;
}

static fa_result check_url(const struct ctl_settings *settings,
                           bool sends_credential, char *err, size_t err_size)
{
	const char *url = settings->url;

	if (url == NULL || url[0] == '\0') {
		snprintf(err, err_size,
		         "no service URL: pass --url, set FLEETAUTH_URL or "
		         "put url = ... in the config file");
		return FA_ERR_INVALID;
	}
	if (strncmp(url, "http://", 7) != 0 &&
	    strncmp(url, "https://", 8) != 0) {
		snprintf(err, err_size,
		         "invalid URL \"%.80s\": expected http:// or https://",
		         url);
		return FA_ERR_INVALID;
	}
	if (sends_credential && strncmp(url, "http://", 7) == 0 &&
	    !ctl_url_is_loopback(url) && !settings->allow_http) {
		snprintf(err, err_size,
		         "refusing to send credentials over plain HTTP to "
		         "%.80s: use https:// or pass --allow-http",
		         url);
		return FA_ERR_DENIED;
	}
	return FA_OK;
}

/* Turns a libcurl failure into one line that names what to check. */
static void describe_curl_error(CURL *curl, CURLcode code, const char *url,
                                long timeout, const char *detail,
                                bool too_large, char *err, size_t err_size)
{
	long os_errno = 0;

	curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
	switch (code) {
	case CURLE_COULDNT_CONNECT:
		snprintf(err, err_size,
		         "cannot reach %s: %s (is fleetauthd running? check "
		         "--url)",
		         url,
		         os_errno == ECONNREFUSED ? "connection refused"
		         : os_errno != 0          ? strerror((int)os_errno)
		                                  : "connection failed");
		break;
	case CURLE_OPERATION_TIMEDOUT:
		snprintf(err, err_size,
		         "no response from %s within %ld s (is fleetauthd "
		         "running? raise --timeout for slow links)",
		         url, timeout);
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
		snprintf(err, err_size,
		         "cannot resolve the host of %s (check --url)", url);
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CONNECT_ERROR:
		snprintf(err, err_size,
		         "TLS with %s failed: %s (pass the service's CA with "
		         "--cacert)",
		         url, detail[0] ? detail : curl_easy_strerror(code));
		break;
	case CURLE_WRITE_ERROR:
		if (too_large) {
			snprintf(err, err_size,
			         "response from %s is larger than %zu bytes",
			         url, CTL_MAX_RESPONSE);
			break;
		}
		/* fall through */
	default:
		snprintf(err, err_size, "request to %s failed: %s", url,
		         detail[0] ? detail : curl_easy_strerror(code));
		break;
	}
}

/* Frees a header list after wiping each entry, because libcurl copied the
 * Authorization header, credential included, into it. */
static void free_headers(struct curl_slist *headers)
{
	for (struct curl_slist *node = headers; node != NULL; node = node->next)
		fa_wipe(node->data, strlen(node->data));
	curl_slist_free_all(headers);
}

/* Builds the request headers. The list contains a copy of auth_header, so
 * free it with free_headers. */
static struct curl_slist *build_headers(bool has_body, const char *auth_header)
{
	struct curl_slist *headers = NULL;
	struct curl_slist *next;

	next = curl_slist_append(headers, "Accept: application/json, "
	                                  "application/problem+json");
	if (next == NULL)
		goto fail;
	headers = next;
	/* Without a body, an empty "Content-Type:" stops libcurl from sending
	 * its form-encoding default on an empty POST. */
	next = curl_slist_append(headers,
	                         has_body ? "Content-Type: application/json"
	                                  : "Content-Type:");
	if (next == NULL)
		goto fail;
	headers = next;
	if (auth_header != NULL) {
		next = curl_slist_append(headers, auth_header);
		if (next == NULL)
			goto fail;
		headers = next;
	}
	return headers;
fail:
	free_headers(headers);
	return NULL;
}

/* Sets the request options shared by every call. */
static void set_common_options(CURL *curl, const struct ctl_settings *settings,
                               const char *url, const char *method,
                               const char *payload)
{
	long connect_timeout = settings->timeout < CTL_CONNECT_TIMEOUT
	                               ? settings->timeout
	                               : CTL_CONNECT_TIMEOUT;

	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, settings->timeout);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, connect_timeout);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "fleetauthctl/0.1.0");
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	if (settings->cacert != NULL)
		curl_easy_setopt(curl, CURLOPT_CAINFO, settings->cacert);
	if (payload != NULL) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE,
		                 (long)strlen(payload));
	} else if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
	}
}

static fa_result make_auth_header(struct ctl *ctl, enum ctl_auth auth,
                                  char **header, char *err, size_t err_size)
{
	const char *credential;
	bool is_token = false;
	size_t size;

	*header = NULL;
	if (auth == CTL_AUTH_NONE)
		return FA_OK;
	credential = pick_credential(&ctl->settings, &is_token);
	if (credential == NULL) {
		snprintf(err, err_size,
		         "no credentials: run \"fleetauthctl login USER\", "
		         "pass --token or --api-key, or set FLEETAUTH_TOKEN or "
		         "FLEETAUTH_API_KEY");
		return FA_ERR_DENIED;
	}
	size = strlen("Authorization: Bearer ") + strlen(credential) + 1;
	*header = malloc(size);
	if (*header == NULL)
		return FA_ERR_NOMEM;
	snprintf(*header, size, "Authorization: Bearer %s", credential);
	return FA_OK;
}

static void parse_body(struct ctl_response *resp, struct body_buffer *buffer)
{
	resp->body = buffer->data;
	resp->body_len = buffer->len;
	buffer->data = NULL;
	if (resp->body != NULL && resp->body_len > 0)
		resp->json = cJSON_ParseWithLength(resp->body, resp->body_len);
}

/*
 * See ctl.h. The body is serialised compactly; the Authorization header and
 * the serialised body are wiped before they are freed because either may
 * hold a secret.
 */
fa_result ctl_http(struct ctl *ctl, const char *method, const char *path,
                   const cJSON *body, enum ctl_auth auth,
                   struct ctl_response *resp, char *err, size_t err_size)
{
	fa_result result = FA_OK;
	struct body_buffer buffer = {0};
	struct curl_slist *headers = NULL;
	char *auth_header = NULL;
	char *payload = NULL;
	char *url = NULL;
	char detail[CURL_ERROR_SIZE] = "";
	CURL *curl = NULL;
	CURLcode code;
	size_t url_size;

	memset(resp, 0, sizeof(*resp));
	result =
	        check_url(&ctl->settings, auth != CTL_AUTH_NONE, err, err_size);
	if (result != FA_OK)
		goto out;
	if (auth != CTL_AUTH_NONE) {
		result = ctl_login_refresh_if_expired(ctl, err, err_size);
		if (result != FA_OK)
			goto out;
	}
	result = make_auth_header(ctl, auth, &auth_header, err, err_size);
	if (result != FA_OK)
		goto out;
	if (body != NULL) {
		payload = cJSON_PrintUnformatted(body);
		if (payload == NULL) {
			result = FA_ERR_NOMEM;
			goto out;
		}
	}
	url_size = strlen(ctl->settings.url) + strlen(path) + 1;
	url = malloc(url_size);
	curl = curl_easy_init();
	headers = build_headers(payload != NULL, auth_header);
	if (url == NULL || curl == NULL || headers == NULL) {
		snprintf(err, err_size, "out of memory");
		result = FA_ERR_NOMEM;
		goto out;
	}
	snprintf(url, url_size, "%s%s", ctl->settings.url, path);
	set_common_options(curl, &ctl->settings, url, method, payload);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, detail);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buffer);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, resp);
	code = curl_easy_perform(curl);
	if (code != CURLE_OK) {
		describe_curl_error(curl, code, ctl->settings.url,
		                    ctl->settings.timeout, detail,
		                    buffer.too_large, err, err_size);
		result = FA_ERR_IO;
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
	parse_body(resp, &buffer);
out:
	if (headers != NULL)
		free_headers(headers);
	if (curl != NULL)
		curl_easy_cleanup(curl);
	free(url);
	ctl_free_secret(payload);
	ctl_free_secret(auth_header);
	if (buffer.data != NULL) {
		fa_wipe(buffer.data, buffer.len);
		free(buffer.data);
	}
	return result;
}

static const char *reason_phrase(long status)
{
	switch (status) {
	case 400:
		return "bad request";
	case 401:
		return "unauthorized";
	case 403:
		return "forbidden";
	case 404:
		return "not found";
	case 405:
		return "method not allowed";
	case 409:
		return "conflict";
	case 413:
		return "content too large";
	case 415:
		return "unsupported media type";
	case 422:
		return "unprocessable content";
	case 429:
		return "too many requests";
	case 500:
		return "internal server error";
	case 502:
		return "bad gateway";
	case 503:
		return "service unavailable";
	case 504:
		return "gateway timeout";
	default:
		return status >= 500 ? "server error" : "error";
	}
}

void ctl_render_problem(long status, const cJSON *problem,
                        const char *retry_after, char *out, size_t out_size)
{
	const char *title = ctl_json_str(problem, "title");
	const char *detail = ctl_json_str(problem, "detail");
	char clean_title[128];
	char clean_detail[400];
	char clean_retry[32];
	int len;

	ctl_sanitize(title && title[0] ? title : reason_phrase(status),
	             clean_title, sizeof(clean_title));
	for (char *p = clean_title; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	ctl_sanitize(detail ? detail : "", clean_detail, sizeof(clean_detail));
	len = snprintf(out, out_size, "HTTP %ld %s", status, clean_title);
	if (len < 0 || (size_t)len >= out_size)
		return;
	if (clean_detail[0] != '\0' && strcmp(clean_detail, clean_title) != 0)
		len += snprintf(out + len, out_size - (size_t)len, ": %s",
		                clean_detail);
	if (len < 0 || (size_t)len >= out_size)
		return;
	if (retry_after != NULL && retry_after[0] != '\0') {
		ctl_sanitize(retry_after, clean_retry, sizeof(clean_retry));
		snprintf(out + len, out_size - (size_t)len,
		         " (retry after %s s)", clean_retry);
	}
}

/* Returns advice for a 401, naming where the rejected credential came
 * from. */
static const char *unauthorized_hint(const struct ctl_settings *settings,
                                     char *out, size_t out_size)
{
	bool is_token = false;
	const char *credential = pick_credential(settings, &is_token);
	enum ctl_credential_source source;

	if (credential == NULL)
		return "";
	source = is_token ? settings->token_source : settings->api_key_source;
	if (source == CTL_CRED_LOGIN)
		snprintf(out, out_size,
		         " (the login in %s is no longer valid; run "
		         "\"fleetauthctl login\" again)",
		         settings->credentials_path ? settings->credentials_path
		                                    : "the credentials file");
	else if (is_token)
		snprintf(out, out_size,
		         " (access token from %s; log in again for a new "
		         "one)",
		         source_name(source, true));
	else
		snprintf(out, out_size,
		         " (API key from %s; check that it is not expired or "
		         "revoked)",
		         source_name(source, false));
	return out;
}

bool ctl_call(struct ctl *ctl, const char *method, const char *path,
              const cJSON *body, enum ctl_auth auth, cJSON **json)
{
	struct ctl_response resp;
	char err[512];
	char line[600];
	char hint[300] = "";

	*json = NULL;
	if (ctl_http(ctl, method, path, body, auth, &resp, err, sizeof(err)) !=
	    FA_OK) {
		ctl_error(ctl, "%s", err);
		return false;
	}
	if (resp.status == 404 && ctl->object[0] != '\0') {
		/* The server sends one detail for every 404, so the kind
		 * and id of the object the command named are more useful. */
		ctl_error(ctl, "%s not found (HTTP 404)", ctl->object);
		ctl_response_free(&resp);
		return false;
	}
	if (resp.status < 200 || resp.status > 299) {
		ctl_render_problem(resp.status, resp.json, resp.retry_after,
		                   line, sizeof(line));
		if (resp.status == 401 && auth != CTL_AUTH_NONE)
			unauthorized_hint(&ctl->settings, hint, sizeof(hint));
		ctl_error(ctl, "%s%s", line, hint);
		ctl_response_free(&resp);
		return false;
	}
	if (resp.json == NULL && resp.body_len > 0) {
		ctl_error(ctl, "HTTP %ld response from %s is not valid JSON",
		          resp.status, ctl->settings.url);
		ctl_response_free(&resp);
		return false;
	}
	*json = resp.json ? resp.json : cJSON_CreateObject();
	resp.json = NULL;
	ctl_response_free(&resp);
	return *json != NULL;
}

bool ctl_url_escape(const char *s, char *out, size_t out_size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t used = 0;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || c == '-' || c == '_' || c == '.' ||
		    c == '~') {
			if (used + 1 >= out_size)
				return false;
			out[used++] = (char)c;
		} else {
			if (used + 3 >= out_size)
				return false;
			out[used++] = '%';
			out[used++] = hex[c >> 4];
			out[used++] = hex[c & 15];
		}
	}
	if (used >= out_size)
		return false;
	out[used] = '\0';
	return true;
}

bool ctl_build_query(char *out, size_t out_size, const char *path,
                     const char *const *pairs)
{
	size_t used = (size_t)snprintf(out, out_size, "%s", path);
	char separator = '?';

	if (used >= out_size)
		return false;
	for (int i = 0; pairs[i] != NULL; i += 2) {
		char escaped[512];

		if (pairs[i + 1] == NULL)
			continue;
		if (!ctl_url_escape(pairs[i + 1], escaped, sizeof(escaped)))
			return false;
		used += (size_t)snprintf(out + used, out_size - used, "%c%s=%s",
		                         separator, pairs[i], escaped);
		if (used >= out_size)
			return false;
		separator = '&';
	}
	return true;
}
