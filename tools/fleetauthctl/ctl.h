/*
 * fleetauthctl internals: settings, command tables, the HTTP client and
 * output helpers shared by the command groups.
 */
#ifndef CTL_H
#define CTL_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "fa_result.h"

/* Exit statuses. */
#define CTL_EXIT_OK 0
#define CTL_EXIT_FAILURE 1 /* the request or an operation failed */
#define CTL_EXIT_USAGE 2   /* invalid command line */

#define CTL_DEFAULT_TIMEOUT 10 /* seconds for one HTTP request */
#define CTL_MAX_TIMEOUT 3600
#define CTL_MAX_RESPONSE ((size_t)16 * 1024 * 1024) /* bytes */
#define CTL_MAX_ARGS 8
#define CTL_MAX_OPTIONS 16

/* Source of the credential in use, named in error messages. */
enum ctl_credential_source {
	CTL_CRED_NONE,
	CTL_CRED_FLAG,
	CTL_CRED_ENV,
	CTL_CRED_CONFIG,
	CTL_CRED_LOGIN,       /* the credentials file written by "login" */
	CTL_CRED_ENV_FALLBACK /* FLEETAUTH_ADMIN_KEY, used when nothing else
	                       * is set */
};

/*
 * Settings resolved from flags, environment, the config file and the
 * credentials file. Every string is malloc'd and owned by the struct;
 * ctl_settings_free wipes the secrets before freeing them.
 */
struct ctl_settings {
	char *url;            /* base URL without a trailing slash */
	char *token;          /* access token (JWT) */
	char *api_key;        /* "fak_..." API key */
	char *cacert;         /* CA bundle for https:// URLs */
	char *refresh_token;  /* from the credentials file only */
	char *login_user;     /* user named in the credentials file */
	long long expires_at; /* access token expiry from the credentials
	                       * file, seconds since the epoch; 0 unknown */
	char *config_path;
	char *credentials_path;
	long timeout;     /* seconds */
	bool timeout_set; /* given on the command line */
	bool json;
	bool allow_http; /* permit credentials over http:// to other hosts */
	enum ctl_credential_source token_source;
	enum ctl_credential_source api_key_source;
};

/* One option of a command. value is the placeholder shown in help (for
 * example "SECONDS"), or NULL for a flag without a value. */
struct ctl_option {
	const char *name; /* long name without the leading "--" */
	const char *value;
	const char *help;
};

/* Parsed command line of one command. */
struct ctl_args {
	const char *positional[CTL_MAX_ARGS];
	int positional_count;
	/* Indexed like the command's option table: the last value given, or
	 * "" for a flag that was set, or NULL when absent. */
	const char *values[CTL_MAX_OPTIONS];
	/* Every value given for each option, in order, for options that may
	 * be repeated. */
	const char *lists[CTL_MAX_OPTIONS][CTL_MAX_ARGS];
	int list_counts[CTL_MAX_OPTIONS];
};

struct ctl;

struct ctl_command {
	const char *name;     /* NULL for a group that is itself the command */
	const char *synopsis; /* positional arguments, for example "USER_ID" */
	int min_args;
	int max_args;
	const char *summary;
	const char *description; /* NULL or extra paragraphs for --help */
	const struct ctl_option *options; /* terminated by a NULL name */
	int (*run)(struct ctl *ctl, const struct ctl_args *args);
};

struct ctl_group {
	const char *name;
	const char *summary;
	const struct ctl_command *commands; /* terminated by a NULL run */
};

/* State of one invocation. */
struct ctl {
	struct ctl_settings settings;
	const struct ctl_group *group;
	const struct ctl_command *command;
	const struct ctl_args *args;
	char where[96]; /* "users create", prefixed to error messages */
	/* Object named by the request, such as 'user "drv-ann"', set by
	 * ctl_object_path; a 404 is reported as '<object> not found'. */
	char object[128];
};

/* Every command group in help order, terminated by NULL. */
extern const struct ctl_group *const ctl_groups[];

extern const struct ctl_group ctl_group_users;
extern const struct ctl_group ctl_group_totp;
extern const struct ctl_group ctl_group_login;
extern const struct ctl_group ctl_group_logout;
extern const struct ctl_group ctl_group_refresh;
extern const struct ctl_group ctl_group_carriers;
extern const struct ctl_group ctl_group_devices;
extern const struct ctl_group ctl_group_loads;
extern const struct ctl_group ctl_group_api_keys;
extern const struct ctl_group ctl_group_signing_keys;
extern const struct ctl_group ctl_group_ca;
extern const struct ctl_group ctl_group_audit;
extern const struct ctl_group ctl_group_status;

/* Global options, accepted before the group and after the command. */
extern const struct ctl_option ctl_global_options[];

/* --- args.c: command-line parsing and help --- */

/*
 * Parses argv (the words after the command name) against the command's
 * options and the global options. Global option values are stored in
 * *settings (which must hold defaults already). Returns FA_OK, or
 * FA_ERR_INVALID with a one-line message in err. *help is set when --help
 * was given, in which case nothing else is checked.
 */
fa_result ctl_args_parse(const struct ctl_command *command, int argc,
                         char **argv, struct ctl_args *args,
                         struct ctl_settings *settings, bool *help, char *err,
                         size_t err_size);

/* Sets one global option; shared by the parser and main's own loop. */
fa_result ctl_global_set(struct ctl_settings *settings, const char *name,
                         const char *value, char *err, size_t err_size);

/* Returns the option's value, "" for a set flag, or NULL when absent.
 * name must be in the command's option table. */
const char *ctl_arg(const struct ctl *ctl, const char *name);

/* Returns the values given for a repeatable option and their count. */
const char *const *ctl_arg_list(const struct ctl *ctl, const char *name,
                                int *count);

void ctl_print_command_help(const struct ctl_group *group,
                            const struct ctl_command *command);
void ctl_print_group_help(const struct ctl_group *group);
void ctl_print_main_help(void);

/* --- settings.c --- */

/* Sets defaults (timeout) and reads the environment. */
fa_result ctl_settings_init(struct ctl_settings *settings);

/*
 * Fills what flags and environment left unset from the config file and the
 * credentials file. Rejects a config or credentials file that group or
 * others can access. On failure err contains one line naming the file.
 */
fa_result ctl_settings_load_files(struct ctl_settings *settings, char *err,
                                  size_t err_size);

void ctl_settings_free(struct ctl_settings *settings);

/* Default credentials file path into out; false when no home is known. */
bool ctl_default_credentials_path(char *out, size_t out_size);

/*
 * Writes key = value lines to path with mode 0600, replacing it
 * atomically; keys and values are NULL-terminated pairs.
 */
fa_result ctl_write_private_file(const char *path, const char *const *pairs,
                                 char *err, size_t err_size);

/*
 * Reads a secret (password, code) from a file, or from standard input when
 * path is "-": the first line without its line ending. *out is malloc'd;
 * the caller wipes and frees it.
 */
fa_result ctl_read_secret_file(const char *path, char **out, char *err,
                               size_t err_size);

/* Prompts on the terminal with echo off. Fails when stdin is no
 * terminal. */
fa_result ctl_prompt_secret(const char *prompt, char **out, char *err,
                            size_t err_size);

/* Wipes and frees a NUL-terminated secret. */
void ctl_free_secret(char *secret);

/* --- http.c --- */

struct ctl_response {
	long status; /* HTTP status, 0 when no response arrived */
	cJSON *json; /* parsed body, or NULL */
	char *body;  /* raw body, NUL-terminated */
	size_t body_len;
	char retry_after[32];
};

enum ctl_auth { CTL_AUTH_NONE, CTL_AUTH_REQUIRED };

/*
 * Sends one request to settings->url + path with an optional JSON body and
 * reads the response. Returns FA_OK when a response arrived, whatever its
 * status; otherwise err contains a one-line reason (connection refused,
 * timeout, TLS failure) and the result is FA_ERR_IO. With CTL_AUTH_REQUIRED
 * it sends the token or API key and fails before connecting when neither
 * is set. The caller frees resp with ctl_response_free.
 */
fa_result ctl_http(struct ctl *ctl, const char *method, const char *path,
                   const cJSON *body, enum ctl_auth auth,
                   struct ctl_response *resp, char *err, size_t err_size);

void ctl_response_free(struct ctl_response *resp);

/*
 * When the access token came from the credentials file and has expired (or
 * expires within 30 seconds), exchanges the stored refresh token for a new
 * pair and rewrites the file. Does nothing otherwise.
 */
fa_result ctl_login_refresh_if_expired(struct ctl *ctl, char *err,
                                       size_t err_size);

/*
 * Renders a non-2xx response as one line, for example
 * 'HTTP 409 conflict: user "drv-ann" already exists'. Uses the problem
 * document's title and detail when the body is application/problem+json,
 * the standard reason phrase otherwise. Control characters are replaced.
 */
void ctl_render_problem(long status, const cJSON *problem,
                        const char *retry_after, char *out, size_t out_size);

/*
 * Sends the request and requires a 2xx status. On success *json is the
 * parsed body (an empty object for 204) owned by the caller. On failure it
 * prints one error line and returns false.
 */
bool ctl_call(struct ctl *ctl, const char *method, const char *path,
              const cJSON *body, enum ctl_auth auth, cJSON **json);

/* True when the host of url is 127.0.0.0/8, ::1 or localhost. */
bool ctl_url_is_loopback(const char *url);

/* Percent-encodes s for a path segment or query value into out. */
bool ctl_url_escape(const char *s, char *out, size_t out_size);

/*
 * Builds path + "?k=v&..." from NULL-terminated key/value pairs, skipping
 * pairs whose value is NULL. Returns false when out is too small.
 */
bool ctl_build_query(char *out, size_t out_size, const char *path,
                     const char *const *pairs);

/* --- output.c --- */

struct ctl_column {
	const char *header;
	const char *key; /* JSON member; a dotted path is not supported */
};

/*
 * Prints items (an array of objects) as an aligned table with one row per
 * item. Missing and null members print as "-", arrays as comma-joined
 * values. Control characters in values are replaced with '?'.
 */
void ctl_print_table(const cJSON *items, const struct ctl_column *columns);

/* Prints the members of an object as "key: value" lines in the given
 * order, then any members not named (unless names is NULL: all). */
void ctl_print_object(const cJSON *object, const char *const *names);

/* Prints JSON for --json: pretty, one document, trailing newline. */
void ctl_print_json(const cJSON *json);

/* Formats a JSON scalar as text into out; control chars become '?'. */
void ctl_value_text(const cJSON *value, char *out, size_t out_size);

/* Copies s into out, replacing control characters with '?'. */
void ctl_sanitize(const char *s, char *out, size_t out_size);

/* Prints "fleetauthctl: WHERE: message" on stderr as one line. */
void ctl_error(const struct ctl *ctl, const char *format, ...)
        __attribute__((format(printf, 2, 3)));

/* Validates an identifier argument and prints an error naming it. */
bool ctl_check_id(const struct ctl *ctl, const char *what, const char *id);

/* Parses a decimal integer in [min, max]; prints an error naming the
 * option on failure. */
bool ctl_parse_long(const struct ctl *ctl, const char *what, const char *text,
                    long min, long max, long *out);

/* Finds the list in a response: the "items" member, or the array itself. */
const cJSON *ctl_items(const cJSON *json);

/* Returns a string member or NULL. */
const char *ctl_json_str(const cJSON *object, const char *name);

/* --- commands.c: helpers shared by the command handlers --- */

/*
 * Prints a command's result and frees json: the JSON itself with --json,
 * otherwise the message (when not NULL) followed by the object's members,
 * names first in that order. Returns the exit status.
 */
int ctl_finish(struct ctl *ctl, cJSON *json, const char *message,
               const char *const *names);

/*
 * GETs path (which may carry a query already) and prints the list as a
 * table, or the JSON with --json. When the response has a "next" cursor,
 * a hint with --after is printed on stderr. Returns the exit status.
 */
int ctl_list(struct ctl *ctl, const char *path,
             const struct ctl_column *columns);

/*
 * Reads a password from the file given (or "-" for standard input), or
 * prompts for it on the terminal (twice when confirm is set). *out is
 * malloc'd; free it with ctl_free_secret. Prints the error itself.
 */
bool ctl_read_password(struct ctl *ctl, const char *file, bool confirm,
                       char **out);

/* Wipes every string in json (request bodies and responses that carry
 * passwords, codes or tokens) and frees it. NULL is allowed. */
void ctl_free_json_secret(cJSON *json);

/* Adds a string member unless value is NULL; false when out of memory. */
bool ctl_add_string(cJSON *object, const char *name, const char *value);

/* Builds "/prefix/ID/suffix" after checking ID; suffix may be "". Also
 * stores the object ('user "ID"' when what is "user id") in ctl->object
 * for the message of a 404 response. */
bool ctl_object_path(struct ctl *ctl, char *out, size_t out_size,
                     const char *prefix, const char *what, const char *id,
                     const char *suffix);

#endif
