/* Tables, key/value listings, JSON output and error lines. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "fa_ids.h"

#define CTL_CELL_MAX 256 /* bytes shown of one table cell */

void ctl_sanitize(const char *s, char *out, size_t out_size)
{
	size_t used = 0;

	if (out_size == 0)
		return;
	for (; *s != '\0' && used + 1 < out_size; s++) {
		unsigned char c = (unsigned char)*s;

		/* Keep UTF-8 bytes, replace C0 controls and DEL so that data
		 * from the service cannot move the cursor or recolour the
		 * terminal. */
		out[used++] = (char)((c < 0x20 || c == 0x7f) ? '?' : c);
	}
	out[used] = '\0';
}

/* NOLINTNEXTLINE(misc-no-recursion): cJSON stops parsing at 1000 levels. */
void ctl_value_text(const cJSON *value, char *out, size_t out_size)
{
	char number[64];

	if (value == NULL || cJSON_IsNull(value)) {
		snprintf(out, out_size, "-");
	} else if (cJSON_IsString(value)) {
		ctl_sanitize(value->valuestring[0] ? value->valuestring : "-",
		             out, out_size);
	} else if (cJSON_IsBool(value)) {
		snprintf(out, out_size, "%s",
		         cJSON_IsTrue(value) ? "yes" : "no");
	} else if (cJSON_IsNumber(value)) {
		if (value->valuedouble == (double)(long long)value->valuedouble)
			snprintf(number, sizeof(number), "%lld",
			         (long long)value->valuedouble);
		else
			snprintf(number, sizeof(number), "%g",
			         value->valuedouble);
		snprintf(out, out_size, "%s", number);
	} else if (cJSON_IsArray(value)) {
		size_t used = 0;
		const cJSON *item;

		out[0] = '\0';
		cJSON_ArrayForEach(item, value)
		{
			char part[CTL_CELL_MAX];

			ctl_value_text(item, part, sizeof(part));
			used += (size_t)snprintf(
			        out + used,
			        used < out_size ? out_size - used : 0, "%s%s",
			        used ? "," : "", part);
			if (used >= out_size)
				break;
		}
		if (out[0] == '\0')
			snprintf(out, out_size, "-");
	} else {
		char *text = cJSON_PrintUnformatted(value);

		ctl_sanitize(text ? text : "?", out, out_size);
		free(text);
	}
}

/* Display width of a UTF-8 string, counting one column per code point. */
static size_t text_width(const char *s)
{
	size_t width = 0;

	for (; *s != '\0'; s++) {
		if (((unsigned char)*s & 0xc0) != 0x80)
			width++;
	}
	return width;
}

static void print_cell(const char *text, size_t width, bool last)
{
	fputs(text, stdout);
	if (last)
		return;
	for (size_t pad = text_width(text); pad < width + 2; pad++)
		putchar(' ');
}

/*
 * Two passes: measure each column over the header and every row, then
 * print. Rows are formatted twice rather than stored, so memory stays
 * independent of the number of rows.
 */
void ctl_print_table(const cJSON *items, const struct ctl_column *columns)
{
	size_t widths[16] = {0};
	char cell[CTL_CELL_MAX];
	const cJSON *item;
	int count = 0;

	while (count < 16 && columns[count].header != NULL) {
		widths[count] = text_width(columns[count].header);
		count++;
	}
	cJSON_ArrayForEach(item, items)
	{
		for (int c = 0; c < count; c++) {
			ctl_value_text(cJSON_GetObjectItemCaseSensitive(
			                       item, columns[c].key),
			               cell, sizeof(cell));
			if (text_width(cell) > widths[c])
				widths[c] = text_width(cell);
		}
	}
	for (int c = 0; c < count; c++)
		print_cell(columns[c].header, widths[c], c == count - 1);
	putchar('\n');
	cJSON_ArrayForEach(item, items)
	{
		for (int c = 0; c < count; c++) {
			ctl_value_text(cJSON_GetObjectItemCaseSensitive(
			                       item, columns[c].key),
			               cell, sizeof(cell));
			print_cell(cell, widths[c], c == count - 1);
		}
		putchar('\n');
	}
}

static bool name_listed(const char *name, const char *const *names)
{
	for (int i = 0; names != NULL && names[i] != NULL; i++) {
		if (strcmp(names[i], name) == 0)
			return true;
	}
	return false;
}

static void print_pair(const char *name, const cJSON *value, size_t width)
{
	char key[80];
	char text[1024];
	size_t key_len;

	ctl_sanitize(name, key, sizeof(key));
	ctl_value_text(value, text, sizeof(text));
	key_len = strlen(key);
	printf("%s:%*s %s\n", key, (int)(width > key_len ? width - key_len : 0),
	       "", text);
}

void ctl_print_object(const cJSON *object, const char *const *names)
{
	const cJSON *member;
	size_t width = 0;

	cJSON_ArrayForEach(member, object)
	{
		if (strlen(member->string) > width)
			width = strlen(member->string);
	}
	if (width > 40)
		width = 40;
	for (int i = 0; names != NULL && names[i] != NULL; i++) {
		member = cJSON_GetObjectItemCaseSensitive(object, names[i]);
		if (member != NULL)
			print_pair(names[i], member, width);
	}
	cJSON_ArrayForEach(member, object)
	{
		if (!name_listed(member->string, names))
			print_pair(member->string, member, width);
	}
}

void ctl_print_json(const cJSON *json)
{
	char *text = cJSON_Print(json);

	if (text == NULL) {
		fprintf(stderr, "fleetauthctl: out of memory\n");
		return;
	}
	printf("%s\n", text);
	free(text);
}

void ctl_error(const struct ctl *ctl, const char *format, ...)
{
	char message[1024];
	char clean[1024];
	va_list ap;

	va_start(ap, format);
	vsnprintf(message, sizeof(message), format, ap);
	va_end(ap);
	/* One line, whatever the message carries. */
	ctl_sanitize(message, clean, sizeof(clean));
	if (ctl != NULL && ctl->where[0] != '\0')
		fprintf(stderr, "fleetauthctl: %s: %s\n", ctl->where, clean);
	else
		fprintf(stderr, "fleetauthctl: %s\n", clean);
}

bool ctl_check_id(const struct ctl *ctl, const char *what, const char *id)
{
	char clean[80];

	if (fa_id_valid(id))
		return true;
	ctl_sanitize(id, clean, sizeof(clean));
	ctl_error(ctl,
	          "invalid %s \"%s\": use 1 to %d characters of A-Z, a-z, "
	          "0-9, '_' and '-'",
	          what, clean, FA_ID_MAX);
	return false;
}

bool ctl_parse_long(const struct ctl *ctl, const char *what, const char *text,
                    long min, long max, long *out)
{
	char *end = NULL;
	char clean[40];
	long value;

	errno = 0;
	value = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || value < min ||
	    value > max) {
		ctl_sanitize(text, clean, sizeof(clean));
		ctl_error(ctl,
		          "invalid %s \"%s\": expected a whole number "
		          "from %ld to %ld",
		          what, clean, min, max);
		return false;
	}
	*out = value;
	return true;
}

const cJSON *ctl_items(const cJSON *json)
{
	const cJSON *items;

	if (cJSON_IsArray(json))
		return json;
	items = cJSON_GetObjectItemCaseSensitive(json, "items");
	return cJSON_IsArray(items) ? items : NULL;
}

const char *ctl_json_str(const cJSON *object, const char *name)
{
	const cJSON *item;

	if (!cJSON_IsObject(object))
		return NULL;
	item = cJSON_GetObjectItemCaseSensitive(object, name);
	return cJSON_IsString(item) ? item->valuestring : NULL;
}
