/* Command-line parsing and generated help for fleetauthctl. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

const struct ctl_option ctl_global_options[] = {
        {"url", "URL",
         "base URL of fleetauthd, for example http://127.0.0.1:8080 "
         "(environment FLEETAUTH_URL)"},
        {"token", "TOKEN",
         "access token (JWT) to send; other local users can read it in the "
         "process list, so prefer FLEETAUTH_TOKEN or the config file"},
        {"api-key", "KEY",
         "API key (fak_...) to send; same caveat as --token "
         "(environment FLEETAUTH_API_KEY; FLEETAUTH_ADMIN_KEY is used "
         "when no other credential is set)"},
        {"config", "FILE",
         "config file with key = value lines (url, token, api_key, cacert, "
         "timeout); default $XDG_CONFIG_HOME/fleetauth/ctl.conf or "
         "~/.config/fleetauth/ctl.conf; must have mode 0600"},
        {"credentials", "FILE",
         "file where \"login\" stores tokens and where later commands read "
         "them; default $XDG_STATE_HOME/fleetauth/credentials or "
         "~/.local/state/fleetauth/credentials"},
        {"cacert", "FILE",
         "PEM CA bundle that signs the service's certificate for https:// "
         "URLs (environment FLEETAUTH_CACERT)"},
        {"timeout", "SECONDS",
         "limit for each HTTP request, 1 to 3600 seconds (default 10)"},
        {"json", NULL, "print the service's JSON response instead of a table"},
        {"allow-http", NULL,
         "send credentials over plain http:// to a host other than loopback"},
        {"help", NULL, "show help and exit"},
        {NULL, NULL, NULL},
};

static const struct ctl_option *find_option(const struct ctl_option *table,
                                            const char *name, size_t name_len,
                                            int *index)
{
	for (int i = 0; table != NULL && table[i].name != NULL; i++) {
		if (strlen(table[i].name) == name_len &&
		    strncmp(table[i].name, name, name_len) == 0) {
			*index = i;
			return &table[i];
		}
	}
	return NULL;
}

static fa_result replace_string(char **field, const char *value, bool secret)
{
	char *copy = strdup(value);

	if (copy == NULL)
		return FA_ERR_NOMEM;
	if (secret)
		ctl_free_secret(*field);
	else
		free(*field);
	*field = copy;
	return FA_OK;
}

/*
 * Applies one global option. Returns FA_ERR_NOT_FOUND when name is not a
 * global option, FA_ERR_INVALID with a message for an invalid value.
 */
fa_result ctl_global_set(struct ctl_settings *settings, const char *name,
                         const char *value, char *err, size_t err_size)
{
	fa_result result = FA_OK;

	if (strcmp(name, "url") == 0) {
		result = replace_string(&settings->url, value, false);
	} else if (strcmp(name, "token") == 0) {
		result = replace_string(&settings->token, value, true);
		settings->token_source = CTL_CRED_FLAG;
	} else if (strcmp(name, "api-key") == 0) {
		result = replace_string(&settings->api_key, value, true);
		settings->api_key_source = CTL_CRED_FLAG;
	} else if (strcmp(name, "config") == 0) {
		result = replace_string(&settings->config_path, value, false);
	} else if (strcmp(name, "credentials") == 0) {
		result = replace_string(&settings->credentials_path, value,
		                        false);
	} else if (strcmp(name, "cacert") == 0) {
		result = replace_string(&settings->cacert, value, false);
	} else if (strcmp(name, "timeout") == 0) {
		char *end = NULL;
		long seconds;

		errno = 0;
		seconds = strtol(value, &end, 10);
		if (errno != 0 || end == value || *end != '\0' || seconds < 1 ||
		    seconds > CTL_MAX_TIMEOUT) {
			snprintf(err, err_size,
			         "invalid --timeout \"%.32s\": expected whole "
			         "seconds from 1 to %d",
			         value, CTL_MAX_TIMEOUT);
			return FA_ERR_INVALID;
		}
		settings->timeout = seconds;
		settings->timeout_set = true;
	} else if (strcmp(name, "json") == 0) {
		settings->json = true;
	} else if (strcmp(name, "allow-http") == 0) {
		settings->allow_http = true;
	} else {
		return FA_ERR_NOT_FOUND;
	}
	if (result == FA_ERR_NOMEM)
		snprintf(err, err_size, "out of memory");
	return result;
}

static fa_result store_command_option(const struct ctl_command *command,
                                      struct ctl_args *args, int index,
                                      const char *value, char *err,
                                      size_t err_size)
{
	const struct ctl_option *option = &command->options[index];

	args->values[index] = value;
	if (args->list_counts[index] >= CTL_MAX_ARGS) {
		snprintf(err, err_size, "--%s given more than %d times",
		         option->name, CTL_MAX_ARGS);
		return FA_ERR_INVALID;
	}
	args->lists[index][args->list_counts[index]++] = value;
	return FA_OK;
}

/*
 * Handles one "--name[=value]" word at argv[*i], taking the value from the
 * next word when needed and advancing *i past it.
 */
static fa_result parse_option(const struct ctl_command *command, int argc,
                              char **argv, int *i, struct ctl_args *args,
                              struct ctl_settings *settings, bool *help,
                              char *err, size_t err_size)
{
	const char *word = argv[*i] + 2;
	const char *equals = strchr(word, '=');
	size_t name_len = equals ? (size_t)(equals - word) : strlen(word);
	const char *value = equals ? equals + 1 : NULL;
	const struct ctl_option *option;
	int index = -1;
	bool is_global = false;

	option = find_option(command->options, word, name_len, &index);
	if (option == NULL) {
		option =
		        find_option(ctl_global_options, word, name_len, &index);
		is_global = true;
	}
	if (option == NULL) {
		snprintf(err, err_size, "unknown option --%.*s (see --help)",
		         (int)(name_len > 40 ? 40 : name_len), word);
		return FA_ERR_INVALID;
	}
	if (option->value == NULL && value != NULL) {
		snprintf(err, err_size, "option --%s takes no value",
		         option->name);
		return FA_ERR_INVALID;
	}
	if (option->value != NULL && value == NULL) {
		if (*i + 1 >= argc) {
			snprintf(err, err_size, "option --%s needs a value %s",
			         option->name, option->value);
			return FA_ERR_INVALID;
		}
		value = argv[++*i];
	}
	if (strcmp(option->name, "help") == 0) {
		*help = true;
		return FA_OK;
	}
	if (is_global)
		return ctl_global_set(settings, option->name,
		                      value ? value : "", err, err_size);
	return store_command_option(command, args, index, value ? value : "",
	                            err, err_size);
}

fa_result ctl_args_parse(const struct ctl_command *command, int argc,
                         char **argv, struct ctl_args *args,
                         struct ctl_settings *settings, bool *help, char *err,
                         size_t err_size)
{
	fa_result result;
	bool options_done = false;

	memset(args, 0, sizeof(*args));
	*help = false;
	for (int i = 0; i < argc; i++) {
		const char *word = argv[i];

		if (!options_done && strcmp(word, "--") == 0) {
			options_done = true;
		} else if (!options_done && strcmp(word, "-h") == 0) {
			*help = true;
		} else if (!options_done && strncmp(word, "--", 2) == 0) {
			result = parse_option(command, argc, argv, &i, args,
			                      settings, help, err, err_size);
			if (result != FA_OK)
				return result;
		} else if (!options_done && word[0] == '-' && word[1] != '\0') {
			snprintf(err, err_size,
			         "unknown option %.40s: options are spelled "
			         "--name (see --help)",
			         word);
			return FA_ERR_INVALID;
		} else if (args->positional_count >= CTL_MAX_ARGS) {
			snprintf(err, err_size, "too many arguments");
			return FA_ERR_INVALID;
		} else {
			args->positional[args->positional_count++] = word;
		}
	}
	if (*help)
		return FA_OK;
	if (args->positional_count < command->min_args) {
		snprintf(err, err_size, "missing argument: expected %s",
		         command->synopsis ? command->synopsis : "more");
		return FA_ERR_INVALID;
	}
	if (args->positional_count > command->max_args) {
		snprintf(err, err_size, "unexpected argument \"%.40s\"%s%s",
		         args->positional[command->max_args],
		         command->max_args > 0 ? ": expected only " : "",
		         command->max_args > 0 ? command->synopsis : "");
		return FA_ERR_INVALID;
	}
	return FA_OK;
}

static int option_index(const struct ctl_command *command, const char *name)
{
	for (int i = 0; command->options && command->options[i].name; i++) {
		if (strcmp(command->options[i].name, name) == 0)
			return i;
	}
	return -1;
}

const char *ctl_arg(const struct ctl *ctl, const char *name)
{
	int index = option_index(ctl->command, name);

	if (index < 0) {
		/* A programming error: the handler asked for an option its
		 * table does not declare. */
		fprintf(stderr,
		        "fleetauthctl: internal error: no option "
		        "--%s in %s\n",
		        name, ctl->where);
		abort();
	}
	return ctl->args->values[index];
}

const char *const *ctl_arg_list(const struct ctl *ctl, const char *name,
                                int *count)
{
	int index = option_index(ctl->command, name);

	if (index < 0) {
		fprintf(stderr,
		        "fleetauthctl: internal error: no option "
		        "--%s in %s\n",
		        name, ctl->where);
		abort();
	}
	*count = ctl->args->list_counts[index];
	return ctl->args->lists[index];
}

/* Prints text wrapped at 78 columns with the given indent. */
static void print_wrapped(const char *text, int indent, int first_column)
{
	int column = first_column;
	const char *p = text;

	while (*p != '\0') {
		size_t word_len = strcspn(p, " ");

		if (column > indent && column + 1 + (int)word_len > 78) {
			printf("\n%*s", indent, "");
			column = indent;
		} else if (column > indent) {
			putchar(' ');
			column++;
		}
		printf("%.*s", (int)word_len, p);
		column += (int)word_len;
		p += word_len;
		while (*p == ' ')
			p++;
	}
	putchar('\n');
}

static void print_options(const struct ctl_option *options)
{
	for (int i = 0; options != NULL && options[i].name != NULL; i++) {
		char head[64];
		int len;

		len = snprintf(head, sizeof(head), "  --%s%s%s",
		               options[i].name, options[i].value ? " " : "",
		               options[i].value ? options[i].value : "");
		if (len < 0)
			continue;
		if (len >= 26) {
			printf("%s\n%26s", head, "");
			len = 26;
		} else {
			printf("%-26s", head);
			len = 26;
		}
		print_wrapped(options[i].help, 26, len);
	}
}

void ctl_print_command_help(const struct ctl_group *group,
                            const struct ctl_command *command)
{
	printf("Usage: fleetauthctl %s%s%s [options]%s%s\n\n", group->name,
	       command->name ? " " : "", command->name ? command->name : "",
	       command->synopsis ? " " : "",
	       command->synopsis ? command->synopsis : "");
	print_wrapped(command->summary, 0, 0);
	if (command->description != NULL) {
		putchar('\n');
		print_wrapped(command->description, 0, 0);
	}
	if (command->options != NULL && command->options[0].name != NULL) {
		printf("\nOptions:\n");
		print_options(command->options);
	}
	printf("\nGlobal options, also accepted here (see fleetauthctl "
	       "--help):\n ");
	for (int i = 0; ctl_global_options[i].name != NULL; i++)
		printf(" --%s", ctl_global_options[i].name);
	printf("\n");
}

void ctl_print_group_help(const struct ctl_group *group)
{
	if (group->commands[0].name == NULL) {
		ctl_print_command_help(group, &group->commands[0]);
		return;
	}
	printf("Usage: fleetauthctl %s COMMAND [options] [arguments]\n\n",
	       group->name);
	print_wrapped(group->summary, 0, 0);
	printf("\nCommands:\n");
	for (int i = 0; group->commands[i].run != NULL; i++) {
		printf("  %-18s", group->commands[i].name);
		print_wrapped(group->commands[i].summary, 20, 20);
	}
	printf("\nRun \"fleetauthctl %s COMMAND --help\" for a command's "
	       "options.\n",
	       group->name);
}

void ctl_print_main_help(void)
{
	printf("Usage: fleetauthctl [global options] GROUP [COMMAND] "
	       "[options] [arguments]\n\n");
	print_wrapped("Command line for fleetauthd: users, logins and TOTP, "
	              "carriers, devices, loads, API keys, signing keys, the "
	              "audit trail and service status.",
	              0, 0);
	printf("\nGroups:\n");
	for (int i = 0; ctl_groups[i] != NULL; i++) {
		printf("  %-18s", ctl_groups[i]->name);
		print_wrapped(ctl_groups[i]->summary, 20, 20);
	}
	printf("\nGlobal options:\n");
	print_options(ctl_global_options);
	printf("  --version                 print the version and exit\n");
	printf("\n");
	print_wrapped("Credentials are taken from --token or --api-key, then "
	              "FLEETAUTH_TOKEN and FLEETAUTH_API_KEY, then the config "
	              "file, then the credentials file written by "
	              "\"fleetauthctl login\", and last FLEETAUTH_ADMIN_KEY. "
	              "An access token wins over an API key from the same "
	              "place. "
	              "Exit status: 0 on success, 1 when a request or "
	              "operation failed, 2 for an invalid command line.",
	              0, 0);
}
