#include "fa_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Lines longer than this are cut inside the message or a field value; the
 * line stays valid JSON. */
#define LOG_LINE_MAX 8192
#define LOG_MESSAGE_MAX 4096

static atomic_int log_level = FA_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warning", "error"};

void fa_log_set_level(enum fa_log_level level)
{
	if (level >= FA_LOG_DEBUG && level <= FA_LOG_ERROR)
		atomic_store(&log_level, (int)level);
}

int fa_log_parse_level(const char *name)
{
	if (name == NULL)
		return -1;
	for (int i = FA_LOG_DEBUG; i <= FA_LOG_ERROR; i++) {
		if (strcmp(name, level_names[i]) == 0)
			return i;
	}
	return -1;
}

/* A line under construction. Content never takes the last two bytes, so
 * the closing "}\n" always fits. */
struct line {
	char buf[LOG_LINE_MAX];
	size_t len;
};

#define LINE_LIMIT (LOG_LINE_MAX - 2)

/* Appends n bytes if they fit, keeping reserve bytes free after them. */
static bool line_put_reserve(struct line *l, const char *s, size_t n,
                             size_t reserve)
{
	if (l->len + n + reserve > LINE_LIMIT)
		return false;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	return true;
}

static bool line_put(struct line *l, const char *s, size_t n)
{
	return line_put_reserve(l, s, n, 0);
}

static bool line_puts(struct line *l, const char *s)
{
	return line_put(l, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_sequence_len(const unsigned char *s, size_t n)
{
	size_t len = 0;
	unsigned int min = 0;
	unsigned int cp = 0;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
		min = 0x80;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
		min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Appends one escaped character, keeping one byte for the closing quote.
 * Returns the bytes of s it consumed, or 0 when the line is full. */
static size_t put_escaped_char(struct line *l, const unsigned char *s, size_t n)
{
	const char *text = NULL;
	char esc[8];
	size_t used = 1;
	size_t text_len = 0;

	switch (s[0]) {
	case '"':
		text = "\\\"";
		break;
	case '\\':
		text = "\\\\";
		break;
	case '\n':
		text = "\\n";
		break;
	case '\r':
		text = "\\r";
		break;
	case '\t':
		text = "\\t";
		break;
	default:
		break;
	}
	if (text == NULL && (s[0] < 0x20 || s[0] == 0x7f)) {
		snprintf(esc, sizeof(esc), "\\u%04x", s[0]);
		text = esc;
	}
	if (text != NULL) {
		text_len = strlen(text);
	} else if (s[0] < 0x80) {
		text = (const char *)s;
		text_len = 1;
	} else {
		used = utf8_sequence_len(s, n);
		text = (const char *)s;
		text_len = used;
		if (used == 0) {
			/* Invalid UTF-8 becomes U+FFFD so the line stays
			 * valid JSON. */
			text = "\\ufffd";
			text_len = strlen(text);
			used = 1;
		}
	}
	return line_put_reserve(l, text, text_len, 1) ? used : 0;
}

/* Appends s as a quoted JSON string. With truncate, a string that does not
 * fit is cut and closed; without it, nothing is cut and false is returned
 * (the caller rolls back). */
static bool put_string(struct line *l, const char *s, bool truncate)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	if (!line_put_reserve(l, "\"", 1, 1))
		return false;
	while (n > 0) {
		size_t used = put_escaped_char(l, p, n);
		if (used == 0) {
			if (!truncate)
				return false;
			break;
		}
		p += used;
		n -= used;
	}
	return line_put(l, "\"", 1);
}

static void put_time(struct line *l)
{
	struct timespec ts;
	struct tm tm;
	char text[80];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	         tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000) % 1000);
	line_puts(l, "\"");
	line_puts(l, text);
	line_puts(l, "\"");
}

/* Writes the whole line with one write(2) call (retried only if the
 * kernel takes part of it), so lines from several threads do not mix. */
static void write_line(const struct line *l)
{
	size_t done = 0;

	while (done < l->len) {
		ssize_t n = write(STDERR_FILENO, l->buf + done, l->len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		done += (size_t)n;
	}
}

/* Appends ,"key":"value"; on overflow the line is left as it was. */
static bool put_field(struct line *l, const char *key, const char *value)
{
	size_t saved = l->len;

	if (line_puts(l, ",") && put_string(l, key, false) &&
	    line_puts(l, ":") && put_string(l, value, false))
		return true;
	l->len = saved;
	return false;
}

/*
 * Formats and writes one JSON object per line to stderr:
 * {"time":"...","level":"...","message":"...", then each field}. The list
 * of fields ends at the first NULL key or NULL value. The message is cut to
 * fit LOG_LINE_MAX bytes; fields that do not fit after it are dropped.
 */
void fa_log(enum fa_log_level level, const char *const *fields,
            const char *format, ...)
{
	struct line l;
	char message[LOG_MESSAGE_MAX];
	va_list args;
	int saved_errno = errno;

	if (level < FA_LOG_DEBUG || level > FA_LOG_ERROR)
		level = FA_LOG_ERROR;
	if ((int)level < atomic_load(&log_level))
		return;

	va_start(args, format);
	vsnprintf(message, sizeof(message), format, args);
	va_end(args);

	l.len = 0;
	line_puts(&l, "{\"time\":");
	put_time(&l);
	line_puts(&l, ",\"level\":\"");
	line_puts(&l, level_names[level]);
	line_puts(&l, "\",\"message\":");
	put_string(&l, message, true);
	for (size_t i = 0; fields != NULL && fields[i] != NULL; i += 2) {
		if (fields[i + 1] == NULL)
			break;
		if (!put_field(&l, fields[i], fields[i + 1]))
			break;
	}
	l.buf[l.len++] = '}';
	l.buf[l.len++] = '\n';
	write_line(&l);
	errno = saved_errno;
}
