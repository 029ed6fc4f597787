/*
 * fleetauthctl: command line for fleetauthd. Resolves the group and
 * command, parses options, loads settings and runs the command's handler.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ctl.h"

#define CTL_VERSION "0.1.0"

static const struct ctl_group *find_group(const char *name)
{
	for (int i = 0; ctl_groups[i] != NULL; i++) {
		if (strcmp(ctl_groups[i]->name, name) == 0)
			return ctl_groups[i];
	}
	return NULL;
}

static const struct ctl_command *find_command(const struct ctl_group *group,
                                              const char *name)
{
	for (int i = 0; group->commands[i].run != NULL; i++) {
		if (strcmp(group->commands[i].name, name) == 0)
			return &group->commands[i];
	}
	return NULL;
}

static void list_commands(const struct ctl_group *group, char *out,
                          size_t out_size)
{
	size_t used = 0;

	out[0] = '\0';
	for (int i = 0; group->commands[i].run != NULL && used < out_size; i++)
		used += (size_t)snprintf(out + used, out_size - used, "%s%s",
		                         i ? ", " : "",
		                         group->commands[i].name);
}

/*
 * Parses the global options before the group name. Returns the index of
 * the group word, or -1 after printing help or the version (exit 0), or -2
 * on an error that was printed (exit 2).
 */
static int parse_leading_options(int argc, char **argv,
                                 struct ctl_settings *settings)
{
	char err[256];
	int i = 1;

	for (; i < argc && strncmp(argv[i], "-", 1) == 0; i++) {
		const char *name = argv[i] + 2;
		const char *value = NULL;
		char option[32];
		const char *equals;

		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			ctl_print_main_help();
			return -1;
		}
		if (strcmp(argv[i], "--version") == 0) {
			printf("fleetauthctl %s\n", CTL_VERSION);
			return -1;
		}
		if (strncmp(argv[i], "--", 2) != 0) {
			ctl_error(NULL, "unknown option %.40s (see --help)",
			          argv[i]);
			return -2;
		}
		equals = strchr(name, '=');
		snprintf(option, sizeof(option), "%.*s",
		         (int)(equals ? equals - name : (long)strlen(name)),
		         name);
		if (equals != NULL) {
			value = equals + 1;
		} else if (strcmp(option, "json") != 0 &&
		           strcmp(option, "allow-http") != 0) {
			if (i + 1 >= argc) {
				ctl_error(NULL, "option --%s needs a value",
				          option);
				return -2;
			}
			value = argv[++i];
		}
		switch (ctl_global_set(settings, option, value ? value : "",
		                       err, sizeof(err))) {
		case FA_OK:
			break;
		case FA_ERR_NOT_FOUND:
			ctl_error(NULL, "unknown option --%s (see --help)",
			          option);
			return -2;
		default:
			ctl_error(NULL, "%s", err);
			return -2;
		}
	}
	return i;
}

/* Resolves group and command from argv[first...]; prints help or an error
 * and returns an exit status through *status when it cannot. */
static const struct ctl_command *resolve(struct ctl *ctl, int argc, char **argv,
                                         int *first, int *status)
{
	const struct ctl_group *group;
	const struct ctl_command *command;
	char names[256];

	if (*first >= argc) {
		ctl_error(NULL, "missing group (run \"fleetauthctl --help\" "
		                "for the list)");
		*status = CTL_EXIT_USAGE;
		return NULL;
	}
	group = find_group(argv[*first]);
	if (group == NULL) {
		ctl_error(NULL,
		          "unknown group \"%.40s\" (run \"fleetauthctl "
		          "--help\" for the list)",
		          argv[*first]);
		*status = CTL_EXIT_USAGE;
		return NULL;
	}
	ctl->group = group;
	(*first)++;
	if (group->commands[0].name == NULL) {
		snprintf(ctl->where, sizeof(ctl->where), "%s", group->name);
		return &group->commands[0];
	}
	if (*first >= argc || strcmp(argv[*first], "--help") == 0 ||
	    strcmp(argv[*first], "-h") == 0) {
		bool help_requested = *first < argc;

		if (help_requested) {
			ctl_print_group_help(group);
			*status = CTL_EXIT_OK;
			return NULL;
		}
		list_commands(group, names, sizeof(names));
		ctl_error(NULL, "%s: missing command (one of: %s)", group->name,
		          names);
		*status = CTL_EXIT_USAGE;
		return NULL;
	}
	command = find_command(group, argv[*first]);
	if (command == NULL) {
		list_commands(group, names, sizeof(names));
		ctl_error(NULL, "%s: unknown command \"%.40s\" (one of: %s)",
		          group->name, argv[*first], names);
		*status = CTL_EXIT_USAGE;
		return NULL;
	}
	snprintf(ctl->where, sizeof(ctl->where), "%s %s", group->name,
	         command->name);
	(*first)++;
	return command;
}

/* Parses argv into args and runs the command. ctl->args points to args, so
 * args must live as long as ctl. */
static int run(int argc, char **argv, struct ctl *ctl, struct ctl_args *args)
{
	const struct ctl_command *command;
	char err[512];
	bool help = false;
	int status = CTL_EXIT_OK;
	int first;

	first = parse_leading_options(argc, argv, &ctl->settings);
	if (first < 0)
		return first == -1 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
	command = resolve(ctl, argc, argv, &first, &status);
	if (command == NULL)
		return status;
	ctl->command = command;
	ctl->args = args;
	if (ctl_args_parse(command, argc - first, argv + first, args,
	                   &ctl->settings, &help, err, sizeof(err)) != FA_OK) {
		ctl_error(ctl, "%s", err);
		return CTL_EXIT_USAGE;
	}
	if (help) {
		ctl_print_command_help(ctl->group, command);
		return CTL_EXIT_OK;
	}
	if (ctl_settings_load_files(&ctl->settings, err, sizeof(err)) !=
	    FA_OK) {
		ctl_error(ctl, "%s", err);
		return CTL_EXIT_FAILURE;
	}
	return command->run(ctl, args);
}

int main(int argc, char **argv)
{
	struct ctl ctl;
	struct ctl_args args;
	int status;

	memset(&ctl, 0, sizeof(ctl));
	memset(&args, 0, sizeof(args));
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		ctl_error(NULL, "cannot initialise libcurl");
		return CTL_EXIT_FAILURE;
	}
	if (ctl_settings_init(&ctl.settings) != FA_OK) {
		ctl_error(NULL, "out of memory");
		return CTL_EXIT_FAILURE;
	}
	status = run(argc, argv, &ctl, &args);
	if ((fflush(stdout) != 0 || ferror(stdout)) && status == CTL_EXIT_OK) {
		ctl_error(NULL, "cannot write standard output");
		status = CTL_EXIT_FAILURE;
	}
	ctl_settings_free(&ctl.settings);
	curl_global_cleanup();
	return status;
}
