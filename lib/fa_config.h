/*
 * Table-driven configuration: each program declares its options once (name,
 * type, range, default, help) and feeds key/value pairs from a file, the
 * environment or Mosquitto's plugin_opt_* lines into the same checks.
 */
#ifndef FA_CONFIG_H
#define FA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "fa_result.h"

enum fa_option_type {
	FA_OPT_STRING,
	FA_OPT_INT,  /* decimal, within [min, max] */
	FA_OPT_BOOL, /* true/false, yes/no, on/off, 1/0 */
	FA_OPT_PATH  /* a string that must name a readable file */
};

struct fa_option {
	const char *name;
	enum fa_option_type type;
	const char *default_value; /* NULL: required */
	long long min;
	long long max;
	size_t offset;    /* offsetof the field in the target struct */
	const char *help; /* what it sets and in what unit */
};

/*
 * Target fields: FA_OPT_STRING and FA_OPT_PATH are char * (malloc'd, freed by
 * fa_config_free), FA_OPT_INT is long long, FA_OPT_BOOL is bool.
 */

/* Applies every default. Required options stay unset. */
fa_result fa_config_defaults(const struct fa_option *table, size_t count,
                             void *target);

/*
 * Sets one option from text. On error writes a message naming the option,
 * the value and the valid range into err (size err_size) and returns
 * FA_ERR_INVALID or FA_ERR_NOT_FOUND (unknown option).
 */
fa_result fa_config_set(const struct fa_option *table, size_t count,
                        void *target, const char *name, const char *value,
                        char *err, size_t err_size);

/*
 * Reads "name = value" lines ('#' starts a comment line) from path. Errors
 * carry the file name and line number.
 */
fa_result fa_config_load_file(const struct fa_option *table, size_t count,
                              void *target, const char *path, char *err,
                              size_t err_size);

/* Applies PREFIX + upper-case name environment variables, for example
 * FLEETAUTHD_LISTEN_PORT; a '_' is added after a prefix that lacks one. */
fa_result fa_config_load_env(const struct fa_option *table, size_t count,
                             void *target, const char *prefix, char *err,
                             size_t err_size);

/*
 * Fails with a message naming the first required option left unset. Only
 * string and path options can be detected as unset (NULL); an int or bool
 * option without a default keeps the caller's initial value.
 */
fa_result fa_config_check_required(const struct fa_option *table, size_t count,
                                   const void *target, char *err,
                                   size_t err_size);

void fa_config_free(const struct fa_option *table, size_t count, void *target);

#endif
