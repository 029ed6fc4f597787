#include "fa_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fa_crypto.h"

#define ENV_NAME_MAX 256

static void set_error(char *err, size_t err_size, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

static void set_error(char *err, size_t err_size, const char *format, ...)
{
	va_list args;

	if (err == NULL || err_size == 0)
		return;
	va_start(args, format);
	vsnprintf(err, err_size, format, args);
	va_end(args);
}

static const struct fa_option *find_option(const struct fa_option *table,
                                           size_t count, const char *name)
{
	for (size_t i = 0; i < count; i++) {
		if (strcmp(table[i].name, name) == 0)
			return &table[i];
	}
	return NULL;
}

static void *field_of(void *target, const struct fa_option *option)
{
	return (char *)target + option->offset;
}

/* Frees a string field; it may hold a password inside a URL, so it is
 * wiped first. */
static void free_string_field(char **field)
{
	if (*field == NULL)
		return;
	fa_wipe(*field, strlen(*field));
	free(*field);
	*field = NULL;
}

/* Parses a whole decimal integer within [min, max]. */
static bool parse_int(const char *value, long long min, long long max,
                      long long *out)
{
	char *end = NULL;
	long long v = 0;

	if (*value == '\0' || isspace((unsigned char)*value))
		return false;
	errno = 0;
	v = strtoll(value, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_bool(const char *value, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(value, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(value, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

/* Checks that path names a readable regular file; on failure writes the
 * reason into reason. */
static bool path_readable(const char *path, char *reason, size_t size)
{
	struct stat st;

	if (access(path, R_OK) != 0 || stat(path, &st) != 0) {
		snprintf(reason, size, "%s", strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(reason, size, "not a regular file");
		return false;
	}
	return true;
}

static fa_result set_string(const struct fa_option *option, void *target,
                            const char *value, char *err, size_t err_size)
{
	char **field = field_of(target, option);
	char reason[128];
	char *copy = NULL;

	if (option->type == FA_OPT_PATH &&
	    !path_readable(value, reason, sizeof(reason))) {
		set_error(err, err_size,
		          "invalid value \"%s\" for option %s: expected a "
		          "readable file (%s)",
		          value, option->name, reason);
		return FA_ERR_INVALID;
	}
	copy = strdup(value);
	if (copy == NULL) {
		set_error(err, err_size, "out of memory setting option %s",
		          option->name);
		return FA_ERR_NOMEM;
	}
	free_string_field(field);
	*field = copy;
	return FA_OK;
}

/* Applies one value to the field of option; the message names both. */
static fa_result apply_value(const struct fa_option *option, void *target,
                             const char *value, char *err, size_t err_size)
{
	switch (option->type) {
	case FA_OPT_STRING:
	case FA_OPT_PATH:
		return set_string(option, target, value, err, err_size);
	case FA_OPT_INT:
		if (!parse_int(value, option->min, option->max,
		               field_of(target, option))) {
			set_error(err, err_size,
			          "invalid value \"%s\" for option %s: "
			          "expected an integer from %lld to %lld",
			          value, option->name, option->min,
			          option->max);
			return FA_ERR_INVALID;
		}
		return FA_OK;
	case FA_OPT_BOOL:
		if (!parse_bool(value, field_of(target, option))) {
			set_error(err, err_size,
			          "invalid value \"%s\" for option %s: "
			          "expected true or false",
			          value, option->name);
			return FA_ERR_INVALID;
		}
		return FA_OK;
	}
	set_error(err, err_size, "option %s has an unknown type", option->name);
	return FA_ERR_INVALID;
}

/*
 * Sets every option that has a default. String and path defaults are
 * copied without the readable-file check, so a default path may name a
 * file that is created later. Options without a default are left as they
 * are; the caller zeroes the target first.
 */
fa_result fa_config_defaults(const struct fa_option *table, size_t count,
                             void *target)
{
	fa_result result = FA_OK;
	char err[256];

	for (size_t i = 0; i < count; i++) {
		const struct fa_option *option = &table[i];
		if (option->default_value == NULL)
			continue;
		if (option->type == FA_OPT_PATH) {
			struct fa_option as_string = *option;
			as_string.type = FA_OPT_STRING;
			result = apply_value(&as_string, target,
			                     option->default_value, err,
			                     sizeof(err));
		} else {
			result = apply_value(option, target,
			                     option->default_value, err,
			                     sizeof(err));
		}
		if (result != FA_OK)
			return result;
	}
	return FA_OK;
}

fa_result fa_config_set(const struct fa_option *table, size_t count,
                        void *target, const char *name, const char *value,
                        char *err, size_t err_size)
{
	const struct fa_option *option = NULL;

	if (name == NULL || value == NULL) {
		set_error(err, err_size, "missing option name or value");
		return FA_ERR_INVALID;
	}
	option = find_option(table, count, name);
	if (option == NULL) {
		set_error(err, err_size, "unknown option \"%s\"", name);
		return FA_ERR_NOT_FOUND;
	}
	return apply_value(option, target, value, err, err_size);
}

static char *trim(char *s)
{
	char *end = NULL;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return s;
}

/*
 * Applies one line of a configuration file. Blank lines and lines whose
 * first non-blank character is '#' are skipped. The message is prefixed
 * with "path:line: ".
 */
static fa_result apply_line(const struct fa_option *table, size_t count,
                            void *target, char *line, const char *path,
                            size_t line_no, char *err, size_t err_size)
{
	fa_result result = FA_OK;
	char message[512];
	char *text = trim(line);
	char *equals = NULL;

	if (*text == '\0' || *text == '#')
		return FA_OK;
	equals = strchr(text, '=');
	if (equals == NULL) {
		set_error(err, err_size,
		          "%s:%zu: expected \"name = value\", got \"%s\"", path,
		          line_no, text);
		return FA_ERR_INVALID;
	}
	*equals = '\0';
	result = fa_config_set(table, count, target, trim(text),
	                       trim(equals + 1), message, sizeof(message));
	if (result != FA_OK)
		set_error(err, err_size, "%s:%zu: %s", path, line_no, message);
	fa_wipe(message, sizeof(message));
	return result;
}

/*
 * Reads "name = value" lines from path. Stops at the first bad line and
 * returns its error (FA_ERR_INVALID or FA_ERR_NOT_FOUND for an unknown
 * option); FA_ERR_IO when the file cannot be opened or read.
 */
fa_result fa_config_load_file(const struct fa_option *table, size_t count,
                              void *target, const char *path, char *err,
                              size_t err_size)
{
	fa_result result = FA_OK;
	FILE *file = NULL;
	char *line = NULL;
	size_t line_size = 0;
	size_t line_no = 0;

	if (path == NULL) {
		set_error(err, err_size, "missing configuration file path");
		return FA_ERR_INVALID;
	}
	file = fopen(path, "re");
	if (file == NULL) {
		set_error(err, err_size, "%s: failed to open: %s", path,
		          strerror(errno));
		return FA_ERR_IO;
	}
	errno = 0;
	while (getline(&line, &line_size, file) >= 0) {
		line_no++;
		result = apply_line(table, count, target, line, path, line_no,
		                    err, err_size);
		if (result != FA_OK)
			goto out;
	}
	if (ferror(file)) {
		set_error(err, err_size, "%s: failed to read: %s", path,
		          strerror(errno));
		result = FA_ERR_IO;
	}

out:
	if (line != NULL) {
		fa_wipe(line, line_size);
		free(line);
	}
	(void)fclose(file); /* opened for reading: nothing to flush */
	return result;
}

/* Builds PREFIX_NAME in upper case; a '_' is added after the prefix when it
 * does not end with one. */
static bool env_name(const char *prefix, const char *name, char *out,
                     size_t out_size)
{
	size_t plen = strlen(prefix);
	const char *sep = plen > 0 && prefix[plen - 1] != '_' ? "_" : "";
	int n = snprintf(out, out_size, "%s%s%s", prefix, sep, name);

	if (n < 0 || (size_t)n >= out_size)
		return false;
	for (char *p = out; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	return true;
}

fa_result fa_config_load_env(const struct fa_option *table, size_t count,
                             void *target, const char *prefix, char *err,
                             size_t err_size)
{
	fa_result result = FA_OK;
	char name[ENV_NAME_MAX];
	char message[512];

	if (prefix == NULL)
		prefix = "";
	for (size_t i = 0; i < count; i++) {
		if (!env_name(prefix, table[i].name, name, sizeof(name))) {
			set_error(err, err_size,
			          "environment variable name for option %s "
			          "is longer than %d characters",
			          table[i].name, ENV_NAME_MAX - 1);
			return FA_ERR_INVALID;
		}
		const char *value = getenv(name);
		if (value == NULL)
			continue;
		result = apply_value(&table[i], target, value, message,
		                     sizeof(message));
		if (result != FA_OK) {
			set_error(err, err_size, "environment variable %s: %s",
			          name, message);
			fa_wipe(message, sizeof(message));
			return result;
		}
	}
	return FA_OK;
}

/*
 * Only string and path options can be detected as unset (NULL). An int or
 * bool option without a default keeps the caller's initial value and is
 * never reported here.
 */
fa_result fa_config_check_required(const struct fa_option *table, size_t count,
                                   const void *target, char *err,
                                   size_t err_size)
{
	for (size_t i = 0; i < count; i++) {
		const struct fa_option *option = &table[i];
		if (option->default_value != NULL)
			continue;
		if (option->type != FA_OPT_STRING &&
		    option->type != FA_OPT_PATH)
			continue;
		char *const *field =
		        (char *const *)((const char *)target + option->offset);
		if (*field == NULL) {
			set_error(err, err_size, "missing required option %s",
			          option->name);
			return FA_ERR_INVALID;
		}
	}
	return FA_OK;
}

void fa_config_free(const struct fa_option *table, size_t count, void *target)
{
	for (size_t i = 0; i < count; i++) {
		if (table[i].type == FA_OPT_STRING ||
		    table[i].type == FA_OPT_PATH)
			free_string_field(field_of(target, &table[i]));
	}
}
