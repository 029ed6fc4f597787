/*
 * Fuzzes configuration parsing (lib/fa_config.c). The first byte picks the
 * entry point: even runs fa_config_load_file on the rest written to a
 * temporary file, odd runs fa_config_set with the rest split at the first
 * '=' into name and value. After success every int option must lie within
 * its range; after a failure the message must be non-empty. err is always
 * NUL-terminated.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "fa_config.h"
#include "fuzz_check.h"

/* fa_config_load_file writes the fields through the offsets in table. */
struct settings {
	char *name;
	/* cppcheck-suppress unusedStructMember ; written through offsetof */
	char *path;
	long long port;
	long long level;
	/* cppcheck-suppress unusedStructMember ; written through offsetof */
	bool verbose;
};

static const struct fa_option table[] = {
        {"name", FA_OPT_STRING, "fleetauth", 0, 0,
         offsetof(struct settings, name), "a name"},
        {"path", FA_OPT_PATH, NULL, 0, 0, offsetof(struct settings, path),
         "a readable file"},
        {"port", FA_OPT_INT, "1883", 1, 65535, offsetof(struct settings, port),
         "a TCP port"},
        {"level", FA_OPT_INT, "0", -5, 5, offsetof(struct settings, level),
         "a small signed number"},
        {"verbose", FA_OPT_BOOL, "false", 0, 0,
         offsetof(struct settings, verbose), "more output"},
};
#define TABLE_SIZE (sizeof(table) / sizeof(table[0]))

static char file_path[64];

static void write_input(const uint8_t *data, size_t size)
{
	FILE *file;

	if (file_path[0] == '\0') {
		int fd;

		snprintf(file_path, sizeof(file_path),
		         "/tmp/fuzz_config.XXXXXX");
		fd = mkstemp(file_path);
		FUZZ_CHECK(fd >= 0);
		close(fd);
	}
	file = fopen(file_path, "wb");
	FUZZ_CHECK(file != NULL);
	FUZZ_CHECK(fwrite(data, 1, size, file) == size);
	FUZZ_CHECK(fclose(file) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct settings s;
	char err[256];
	fa_result result;

	if (size == 0)
		return 0;
	memset(&s, 0, sizeof(s));
	memset(err, 'x', sizeof(err));
	FUZZ_CHECK(fa_config_defaults(table, TABLE_SIZE, &s) == FA_OK);
	if ((data[0] & 1) == 0) {
		write_input(data + 1, size - 1);
		result = fa_config_load_file(table, TABLE_SIZE, &s, file_path,
		                             err, sizeof(err));
	} else {
		char *text = strndup((const char *)data + 1, size - 1);
		char *eq;

		FUZZ_CHECK(text != NULL);
		eq = strchr(text, '=');
		if (eq != NULL)
			*eq = '\0';
		result = fa_config_set(table, TABLE_SIZE, &s, text,
		                       eq != NULL ? eq + 1 : "", err,
		                       sizeof(err));
		free(text);
	}
	if (result == FA_OK) {
		FUZZ_CHECK(s.port >= 1 && s.port <= 65535);
		FUZZ_CHECK(s.level >= -5 && s.level <= 5);
		FUZZ_CHECK(s.name != NULL);
	} else {
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		FUZZ_CHECK(err[0] != '\0');
	}
	fa_config_free(table, TABLE_SIZE, &s);
	return 0;
}
