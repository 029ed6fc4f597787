/* Reading the client list and expanding topic templates. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loadgen.h"

static int list_grow(struct client_list *list, size_t *capacity)
{
	struct client_spec *items;
	size_t next;

	if (list->count < *capacity)
		return 0;
	next = *capacity ? *capacity * 2 : 256;
	items = realloc(list->items, next * sizeof(*items));
	if (items == NULL)
		return -1;
	memset(items + *capacity, 0, (next - *capacity) * sizeof(*items));
	list->items = items;
	*capacity = next;
	return 0;
}

/* Frees the strings of spec, wiping the password first. */
static void spec_free(struct client_spec *spec)
{
	if (spec->password != NULL)
		memset(spec->password, 0, strlen(spec->password));
	free(spec->client_id);
	free(spec->username);
	free(spec->password);
	free(spec->var);
	free(spec->certfile);
	free(spec->keyfile);
	memset(spec, 0, sizeof(*spec));
}

static int spec_set_token(struct client_spec *spec, char **fields, int nfields)
{
	spec->client_id = strdup(fields[0]);
	spec->username = strdup(fields[1]);
	spec->password = strdup(fields[2]);
	spec->var = strdup(nfields > 3 ? fields[3] : "");
	if (spec->client_id == NULL || spec->username == NULL ||
	    spec->password == NULL || spec->var == NULL)
		return -1;
	return 0;
}

int client_list_read_file(const char *path, size_t limit,
                          struct client_list *list)
{
	FILE *file = NULL;
	char *line = NULL;
	size_t line_size = 0, capacity = 0, lineno = 0;
	int result = -1;

	memset(list, 0, sizeof(*list));
	file = fopen(path, "r");
	if (file == NULL) {
		perror(path);
		goto out;
	}
	while (getline(&line, &line_size, file) >= 0) {
		char *fields[5], *save = NULL, *field;
		int nfields = 0;

		lineno++;
		if (limit && list->count >= limit)
			break;
		for (field = strtok_r(line, " \t\r\n", &save);
		     field != NULL && nfields < 5;
		     field = strtok_r(NULL, " \t\r\n", &save))
			fields[nfields++] = field;
		if (nfields == 0 || fields[0][0] == '#')
			continue;
		if (nfields < 3 || nfields > 4) {
			fprintf(stderr,
			        "%s:%zu: expected \"client_id username "
			        "password [var]\", found %d fields\n",
			        path, lineno, nfields);
			goto out;
		}
		if (list_grow(list, &capacity) != 0 ||
		    spec_set_token(&list->items[list->count], fields,
		                   nfields) != 0) {
			if (capacity > list->count)
				spec_free(&list->items[list->count]);
			fprintf(stderr, "out of memory reading %s\n", path);
			goto out;
		}
		list->count++;
	}
	if (ferror(file)) {
		perror(path);
		goto out;
	}
	if (list->count == 0) {
		fprintf(stderr, "%s: no clients in the file\n", path);
		goto out;
	}
	result = 0;
out:
	if (line != NULL) {
		/* The passwords are access tokens. */
		memset(line, 0, line_size);
		free(line);
	}
	if (file != NULL)
		(void)fclose(file); /* read-only: nothing is lost */
	if (result != 0)
		client_list_free(list);
	return result;
}

static int has_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	return n > s && strcmp(name + n - s, suffix) == 0;
}

static int spec_set_cert(struct client_spec *spec, const char *dir,
                         const char *name)
{
	size_t base = strlen(name) - strlen(".pem");
	size_t size = strlen(dir) + strlen(name) + 8;

	spec->client_id = strndup(name, base);
	spec->username = strndup(name, base);
	spec->var = strdup("");
	spec->certfile = malloc(size);
	spec->keyfile = malloc(size);
	if (spec->client_id == NULL || spec->username == NULL ||
	    spec->var == NULL || spec->certfile == NULL ||
	    spec->keyfile == NULL)
		return -1;
	snprintf(spec->certfile, size, "%s/%s", dir, name);
	snprintf(spec->keyfile, size, "%s/%.*s.key", dir, (int)base, name);
	return 0;
}

int client_list_read_cert_dir(const char *dir, size_t limit,
                              struct client_list *list)
{
	struct dirent **names = NULL;
	size_t capacity = 0;
	int count, i, result = -1;

	memset(list, 0, sizeof(*list));
	count = scandir(dir, &names, NULL, alphasort);
	if (count < 0) {
		perror(dir);
		return -1;
	}
	for (i = 0; i < count; i++) {
		struct client_spec *spec;

		if (limit && list->count >= limit)
			break;
		if (!has_suffix(names[i]->d_name, ".pem"))
			continue;
		if (list_grow(list, &capacity) != 0)
			goto nomem;
		spec = &list->items[list->count];
		if (spec_set_cert(spec, dir, names[i]->d_name) != 0) {
			spec_free(spec);
			goto nomem;
		}
		list->count++;
		if (access(spec->keyfile, R_OK) != 0) {
			perror(spec->keyfile);
			goto out;
		}
	}
	if (list->count == 0) {
		fprintf(stderr, "%s: no NAME.pem files in the directory\n",
		        dir);
		goto out;
	}
	result = 0;
	goto out;
nomem:
	fprintf(stderr, "out of memory reading %s\n", dir);
out:
	for (i = 0; i < count; i++)
		free(names[i]);
	free(names);
	if (result != 0)
		client_list_free(list);
	return result;
}

void client_list_free(struct client_list *list)
{
	size_t i;

	for (i = 0; list->items != NULL && i < list->count; i++)
		spec_free(&list->items[i]);
	free(list->items);
	memset(list, 0, sizeof(*list));
}

static int append(char *out, size_t size, size_t *used, const char *text)
{
	size_t len = strlen(text);

	if (*used + len >= size)
		return -1;
	memcpy(out + *used, text, len + 1);
	*used += len;
	return 0;
}

int topic_expand(const char *template, const struct client_spec *spec,
                 size_t index, char *out, size_t size)
{
	char number[24], one[2] = {0, 0};
	size_t used = 0;
	const char *p;
	int rc = 0;

	for (p = template; *p != '\0' && rc == 0; p++) {
		if (*p != '%') {
			one[0] = *p;
			rc = append(out, size, &used, one);
			continue;
		}
		p++;
		switch (*p) {
		case 'c':
			rc = append(out, size, &used, spec->client_id);
			break;
		case 'u':
			rc = append(out, size, &used, spec->username);
			break;
		case 'v':
			rc = append(out, size, &used, spec->var);
			break;
		case 'i':
			snprintf(number, sizeof(number), "%zu", index);
			rc = append(out, size, &used, number);
			break;
		case '%':
			rc = append(out, size, &used, "%");
			break;
		default:
			return -1;
		}
	}
	if (rc != 0 || used >= size)
		return -1;
	out[used] = '\0';
	return 0;
}
