/*
 * Settings for fleetauthctl from the environment, the config file and the
 * credentials file, and the private-file helpers that read and write them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "ctl.h"
#include "fa_crypto.h"

#define CTL_MAX_FILE_SIZE 65536 /* bytes in a config or credentials file */
#define CTL_MAX_SECRET 4096     /* bytes in a password or code */

void ctl_free_secret(char *secret)
{
	if (secret == NULL)
		return;
	fa_wipe(secret, strlen(secret));
	free(secret);
}

static fa_result set_from_env(char **field, const char *name)
{
	const char *value = getenv(name);

	if (value == NULL || value[0] == '\0')
		return FA_OK;
	*field = strdup(value);
	return *field == NULL ? FA_ERR_NOMEM : FA_OK;
}

fa_result ctl_settings_init(struct ctl_settings *settings)
{
	fa_result result = FA_OK;

	memset(settings, 0, sizeof(*settings));
	settings->timeout = CTL_DEFAULT_TIMEOUT;
	result = set_from_env(&settings->url, "FLEETAUTH_URL");
	if (result != FA_OK)
		goto out;
	result = set_from_env(&settings->cacert, "FLEETAUTH_CACERT");
	if (result != FA_OK)
		goto out;
	result = set_from_env(&settings->token, "FLEETAUTH_TOKEN");
	if (result != FA_OK)
		goto out;
	if (settings->token != NULL)
		settings->token_source = CTL_CRED_ENV;
	result = set_from_env(&settings->api_key, "FLEETAUTH_API_KEY");
	if (result != FA_OK)
		goto out;
	if (settings->api_key != NULL) {
		settings->api_key_source = CTL_CRED_ENV;
		goto out;
	}
	result = set_from_env(&settings->api_key, "FLEETAUTH_ADMIN_KEY");
	if (settings->api_key != NULL)
		settings->api_key_source = CTL_CRED_ENV_FALLBACK;
out:
	return result;
}

void ctl_settings_free(struct ctl_settings *settings)
{
	free(settings->url);
	ctl_free_secret(settings->token);
	ctl_free_secret(settings->api_key);
	ctl_free_secret(settings->refresh_token);
	free(settings->login_user);
	free(settings->cacert);
	free(settings->config_path);
	free(settings->credentials_path);
	memset(settings, 0, sizeof(*settings));
}

/* Builds $VAR/suffix, or $HOME/fallback/suffix when VAR is unset. */
static bool home_path(char *out, size_t out_size, const char *var,
                      const char *fallback, const char *suffix)
{
	const char *base = getenv(var);
	int len;

	if (base != NULL && base[0] == '/') {
		len = snprintf(out, out_size, "%s/%s", base, suffix);
	} else {
		const char *home = getenv("HOME");

		if (home == NULL || home[0] != '/')
			return false;
		len = snprintf(out, out_size, "%s/%s/%s", home, fallback,
		               suffix);
	}
	return len > 0 && (size_t)len < out_size;
}

bool ctl_default_credentials_path(char *out, size_t out_size)
{
	return home_path(out, out_size, "XDG_STATE_HOME", ".local/state",
	                 "fleetauth/credentials");
}

/*
 * Opens path and checks that it is a regular file of at most
 * CTL_MAX_FILE_SIZE bytes owned by this user with no group or other
 * access, then reads it into a malloc'd NUL-terminated buffer. Returns
 * FA_ERR_NOT_FOUND when the file does not exist.
 */
static fa_result read_private_file(const char *path, char **out, char *err,
                                   size_t err_size)
{
	fa_result result = FA_OK;
	struct stat st;
	char *text = NULL;
	ssize_t got;
	int fd;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, err_size, "cannot open %s: %s", path,
		         strerror(errno));
		return errno == ENOENT ? FA_ERR_NOT_FOUND : FA_ERR_IO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, err_size, "%s is not a regular file", path);
		result = FA_ERR_INVALID;
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, err_size,
		         "%s can be accessed by group or others (mode %04o); "
		         "it may hold credentials, so run: chmod 600 %s",
		         path, (unsigned)(st.st_mode & 07777), path);
		result = FA_ERR_DENIED;
		goto out;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, err_size,
		         "%s is owned by uid %u, not by you (uid %u); "
		         "use a file of your own",
		         path, (unsigned)st.st_uid, (unsigned)geteuid());
		result = FA_ERR_DENIED;
		goto out;
	}
	if (st.st_size > CTL_MAX_FILE_SIZE) {
		snprintf(err, err_size, "%s is larger than %d bytes", path,
		         CTL_MAX_FILE_SIZE);
		result = FA_ERR_TOO_LARGE;
		goto out;
	}
	text = calloc(1, (size_t)st.st_size + 1);
	if (text == NULL) {
		result = FA_ERR_NOMEM;
		goto out;
	}
	got = read(fd, text, (size_t)st.st_size);
	if (got != st.st_size) {
		snprintf(err, err_size, "cannot read %s: %s", path,
		         got < 0 ? strerror(errno) : "short read");
		result = FA_ERR_IO;
		goto out;
	}
	*out = text;
	text = NULL;
out:
	if (text != NULL)
		ctl_free_secret(text);
	close(fd);
	return result;
}

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s &&
	       (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

typedef fa_result (*ctl_pair_fn)(struct ctl_settings *settings, const char *key,
                                 const char *value, char *err, size_t err_size);

/*
 * Splits text into "key = value" lines, skipping blank lines and lines
 * starting with '#', and calls apply for each. Errors carry the path and
 * line number. text is modified in place.
 */
static fa_result parse_pairs(char *text, const char *path,
                             struct ctl_settings *settings, ctl_pair_fn apply,
                             char *err, size_t err_size)
{
	fa_result result = FA_OK;
	char *line = text;
	int number = 0;

	while (line != NULL && *line != '\0') {
		char *next = strchr(line, '\n');
		char *equals;
		char *key;
		char inner[200];

		number++;
		if (next != NULL)
			*next++ = '\0';
		key = trim(line);
		line = next;
		if (*key == '\0' || *key == '#')
			continue;
		equals = strchr(key, '=');
		if (equals == NULL) {
			snprintf(err, err_size,
			         "%s line %d: expected key = value", path,
			         number);
			return FA_ERR_INVALID;
		}
		*equals = '\0';
		inner[0] = '\0';
		result = apply(settings, trim(key), trim(equals + 1), inner,
		               sizeof(inner));
		if (result != FA_OK) {
			snprintf(err, err_size, "%s line %d: %s", path, number,
			         inner);
			return result;
		}
	}
	return FA_OK;
}

static fa_result fill_string(char **field, const char *value)
{
	if (*field != NULL)
		return FA_OK;
	*field = strdup(value);
	return *field == NULL ? FA_ERR_NOMEM : FA_OK;
}

/* Applies one config-file pair to fields that flags and environment left
 * unset. */
static fa_result apply_config_pair(struct ctl_settings *settings,
                                   const char *key, const char *value,
                                   char *err, size_t err_size)
{
	fa_result result = FA_OK;

	if (strcmp(key, "url") == 0) {
		result = fill_string(&settings->url, value);
	} else if (strcmp(key, "cacert") == 0) {
		result = fill_string(&settings->cacert, value);
	} else if (strcmp(key, "token") == 0) {
		if (settings->token == NULL)
			settings->token_source = CTL_CRED_CONFIG;
		result = fill_string(&settings->token, value);
	} else if (strcmp(key, "api_key") == 0) {
		if (settings->api_key_source == CTL_CRED_ENV_FALLBACK) {
			ctl_free_secret(settings->api_key);
			settings->api_key = NULL;
		}
		if (settings->api_key == NULL)
			settings->api_key_source = CTL_CRED_CONFIG;
		result = fill_string(&settings->api_key, value);
	} else if (strcmp(key, "timeout") == 0) {
		char *end = NULL;
		long seconds = strtol(value, &end, 10);

		if (end == value || *end != '\0' || seconds < 1 ||
		    seconds > CTL_MAX_TIMEOUT) {
			snprintf(err, err_size,
			         "invalid timeout \"%.32s\": expected whole "
			         "seconds from 1 to %d",
			         value, CTL_MAX_TIMEOUT);
			return FA_ERR_INVALID;
		}
		if (!settings->timeout_set)
			settings->timeout = seconds;
	} else {
		snprintf(err, err_size,
		         "unknown key \"%.40s\" (known: url, token, api_key, "
		         "cacert, timeout)",
		         key);
		return FA_ERR_INVALID;
	}
	if (result == FA_ERR_NOMEM)
		snprintf(err, err_size, "out of memory");
	return result;
}

/* Applies one credentials-file pair; only used when no other credential
 * was found. */
static fa_result apply_login_pair(struct ctl_settings *settings,
                                  const char *key, const char *value, char *err,
                                  size_t err_size)
{
	fa_result result = FA_OK;

	if (strcmp(key, "url") == 0) {
		result = fill_string(&settings->url, value);
	} else if (strcmp(key, "access_token") == 0) {
		settings->token_source = CTL_CRED_LOGIN;
		result = fill_string(&settings->token, value);
	} else if (strcmp(key, "refresh_token") == 0) {
		result = fill_string(&settings->refresh_token, value);
	} else if (strcmp(key, "expires_at") == 0) {
		settings->expires_at = strtoll(value, NULL, 10);
	} else if (strcmp(key, "user") == 0) {
		result = fill_string(&settings->login_user, value);
	} else {
		snprintf(err, err_size, "unknown key \"%.40s\"", key);
		return FA_ERR_INVALID;
	}
	if (result == FA_ERR_NOMEM)
		snprintf(err, err_size, "out of memory");
	return result;
}

static fa_result load_pairs_file(struct ctl_settings *settings,
                                 const char *path, bool must_exist,
                                 ctl_pair_fn apply, char *err, size_t err_size)
{
	fa_result result = FA_OK;
	char *text = NULL;

	result = read_private_file(path, &text, err, err_size);
	if (result == FA_ERR_NOT_FOUND && !must_exist) {
		err[0] = '\0';
		return FA_OK;
	}
	if (result != FA_OK)
		return result;
	result = parse_pairs(text, path, settings, apply, err, err_size);
	ctl_free_secret(text);
	return result;
}

/* True when a credential outranks the credentials file. */
static bool have_credential(const struct ctl_settings *settings)
{
	return settings->token != NULL ||
	       (settings->api_key != NULL &&
	        settings->api_key_source != CTL_CRED_ENV_FALLBACK);
}

fa_result ctl_settings_load_files(struct ctl_settings *settings, char *err,
                                  size_t err_size)
{
	fa_result result;
	char path[PATH_MAX];
	bool explicit_config = settings->config_path != NULL;

	if (!explicit_config && home_path(path, sizeof(path), "XDG_CONFIG_HOME",
	                                  ".config", "fleetauth/ctl.conf")) {
		settings->config_path = strdup(path);
		if (settings->config_path == NULL)
			return FA_ERR_NOMEM;
	}
	if (settings->config_path != NULL) {
		result = load_pairs_file(settings, settings->config_path,
		                         explicit_config, apply_config_pair,
		                         err, err_size);
		if (result != FA_OK)
			return result;
	}
	if (settings->credentials_path == NULL &&
	    ctl_default_credentials_path(path, sizeof(path))) {
		settings->credentials_path = strdup(path);
		if (settings->credentials_path == NULL)
			return FA_ERR_NOMEM;
	}
	if (have_credential(settings) || settings->credentials_path == NULL)
		return FA_OK;
	return load_pairs_file(settings, settings->credentials_path, false,
	                       apply_login_pair, err, err_size);
}

/* Creates every missing folder above path with mode 0700, so that a fresh
 * home gets ~/.local, ~/.local/state and ~/.local/state/fleetauth. */
static void make_parent_dirs(const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return;
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return;
	*slash = '\0';
	/* Creates each missing level from the top down; levels that exist
	 * keep their mode. A failure shows up when the file is created. */
	for (slash = strchr(dir + 1, '/'); slash != NULL;
	     slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		(void)mkdir(dir, 0700);
		*slash = '/';
	}
	(void)mkdir(dir, 0700);
}

static bool write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		data += n;
		len -= (size_t)n;
	}
	return true;
}

fa_result ctl_write_private_file(const char *path, const char *const *pairs,
                                 char *err, size_t err_size)
{
	fa_result result = FA_OK;
	char temp[PATH_MAX];
	bool written = true;
	int fd;

	make_parent_dirs(path);
	if (snprintf(temp, sizeof(temp), "%s.XXXXXX", path) >=
	    (int)sizeof(temp)) {
		snprintf(err, err_size, "path too long: %s", path);
		return FA_ERR_INVALID;
	}
	fd = mkstemp(temp); /* mode 0600 */
	if (fd < 0) {
		snprintf(err, err_size, "cannot create %s: %s", temp,
		         strerror(errno));
		return FA_ERR_IO;
	}
	for (int i = 0; pairs[i] != NULL && written; i += 2) {
		written = write_all(fd, pairs[i], strlen(pairs[i])) &&
		          write_all(fd, " = ", 3) &&
		          write_all(fd, pairs[i + 1], strlen(pairs[i + 1])) &&
		          write_all(fd, "\n", 1);
	}
	if (!written || fsync(fd) != 0) {
		snprintf(err, err_size, "cannot write %s: %s", temp,
		         strerror(errno));
		result = FA_ERR_IO;
	}
	if (close(fd) != 0 && result == FA_OK) {
		snprintf(err, err_size, "cannot write %s: %s", temp,
		         strerror(errno));
		result = FA_ERR_IO;
	}
	if (result == FA_OK && rename(temp, path) != 0) {
		snprintf(err, err_size, "cannot replace %s: %s", path,
		         strerror(errno));
		result = FA_ERR_IO;
	}
	if (result != FA_OK)
		unlink(temp);
	return result;
}

/* Reads the first line of fp into a malloc'd string. */
static fa_result read_first_line(FILE *fp, const char *name, char **out,
                                 char *err, size_t err_size)
{
	char *buf = calloc(1, CTL_MAX_SECRET + 2);
	size_t len;

	*out = NULL;
	if (buf == NULL)
		return FA_ERR_NOMEM;
	if (fgets(buf, CTL_MAX_SECRET + 2, fp) == NULL) {
		snprintf(err, err_size, "%s is empty", name);
		free(buf);
		return FA_ERR_INVALID;
	}
	len = strcspn(buf, "\r\n");
	if (len > CTL_MAX_SECRET) {
		snprintf(err, err_size, "%s: first line longer than %d bytes",
		         name, CTL_MAX_SECRET);
		ctl_free_secret(buf);
		return FA_ERR_TOO_LARGE;
	}
	buf[len] = '\0';
	if (len == 0) {
		snprintf(err, err_size, "%s: first line is empty", name);
		free(buf);
		return FA_ERR_INVALID;
	}
	*out = buf;
	return FA_OK;
}

fa_result ctl_read_secret_file(const char *path, char **out, char *err,
                               size_t err_size)
{
	fa_result result = FA_OK;
	FILE *fp;

	*out = NULL;
	if (strcmp(path, "-") == 0)
		return read_first_line(stdin, "standard input", out, err,
		                       err_size);
	fp = fopen(path, "re");
	if (fp == NULL) {
		snprintf(err, err_size, "cannot open %s: %s", path,
		         strerror(errno));
		return FA_ERR_IO;
	}
	result = read_first_line(fp, path, out, err, err_size);
	(void)fclose(fp); /* opened for reading: nothing to flush */
	return result;
}

fa_result ctl_prompt_secret(const char *prompt, char **out, char *err,
                            size_t err_size)
{
	fa_result result = FA_OK;
	struct termios saved;
	struct termios quiet;

	*out = NULL;
	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved) != 0) {
		snprintf(err, err_size,
		         "%s needed but standard input is not a terminal; "
		         "pass it in a file (see --help)",
		         prompt);
		return FA_ERR_INVALID;
	}
	quiet = saved;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	fprintf(stderr, "%s: ", prompt);
	/* stderr is unbuffered, and a failed prompt has no remedy. */
	(void)fflush(stderr);
	(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	result = read_first_line(stdin, "input", out, err, err_size);
	(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
	fputc('\n', stderr);
	return result;
}
