/*
 * fleetauth-scale-api: sends a list of HTTP requests to fleetauthd from
 * several threads at once and records when each one started and ended, so
 * that the scale scenarios can measure from the start of the API call that
 * caused an effect.
 *
 *   fleetauth-scale-api --port PORT [--workers N] < REQUESTS
 *
 * Each input line is "TAG METHOD PATH [JSON-BODY]". TAG is copied to the
 * output and must not contain spaces. The requests go to 127.0.0.1:PORT over
 * HTTP/1.1, one TCP connection each, with "Authorization: Bearer" and the
 * credential in the environment variable FLEETAUTH_ADMIN_KEY. Output, one
 * line per request in input order, times in milliseconds since the epoch
 * (CLOCK_REALTIME):
 *
 *   TAG START_MS END_MS STATUS
 *
 * STATUS is the HTTP status code, or 0 when the connection failed. The exit
 * status is 0 when every request got a 2xx answer, else 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 64
#define REQUEST_MAX 8192
#define RESPONSE_HEAD 64

struct request {
	char *text; /* the line as read; tag, method, path and body point in */
	char *tag;
	char *method;
	char *path;
	char *body; /* NULL when the line has none */
	long long start_ms;
	long long end_ms;
	int status;
};

struct run {
	struct request *requests;
	size_t count;
	atomic_size_t next;
	int port;
	const char *credential;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads the response until the server closes the connection and returns the
 * status code of its first line, or 0 when there is none. */
static int read_status(int fd)
{
	char head[RESPONSE_HEAD + 1], sink[4096];
	size_t have = 0;
	int status = 0;
	ssize_t n;

	for (;;) {
		if (have < RESPONSE_HEAD)
			n = read(fd, head + have, RESPONSE_HEAD - have);
		else
			n = read(fd, sink, sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (have < RESPONSE_HEAD)
			have += (size_t)n;
	}
	head[have] = '\0';
	if (strncmp(head, "HTTP/1.", 7) != 0 || strchr(head, ' ') == NULL)
		return 0;
	status = (int)strtol(strchr(head, ' ') + 1, NULL, 10);
	return status >= 100 && status <= 599 ? status : 0;
}

/* Sends one request on a new connection and returns the status code, or 0
 * when connecting, sending or reading failed. */
static int send_request(const struct run *run, const struct request *request)
{
	struct sockaddr_in address = {.sin_family = AF_INET,
	                              .sin_port = htons((uint16_t)run->port),
	                              .sin_addr.s_addr =
	                                      htonl(INADDR_LOOPBACK)};
	char text[REQUEST_MAX];
	size_t body_len = request->body ? strlen(request->body) : 0;
	int len, fd, status = 0;

	len = snprintf(text, sizeof(text),
	               "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
	               "Authorization: Bearer %s\r\n"
	               "Connection: close\r\n",
	               request->method, request->path, run->port,
	               run->credential);
	if (request->body != NULL && len > 0 && (size_t)len < sizeof(text))
		len += snprintf(text + len, sizeof(text) - (size_t)len,
		                "Content-Type: application/json\r\n"
		                "Content-Length: %zu\r\n\r\n%s",
		                body_len, request->body);
	else if (len > 0 && (size_t)len < sizeof(text))
		len += snprintf(text + len, sizeof(text) - (size_t)len, "\r\n");
	if (len < 0 || (size_t)len >= sizeof(text))
		return 0;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	if (connect(fd, (struct sockaddr *)&address, sizeof(address)) == 0 &&
	    write_all(fd, text, (size_t)len) == 0)
		status = read_status(fd);
	close(fd);
	return status;
}

static void *worker(void *arg)
{
	struct run *run = arg;

	for (;;) {
		size_t i = atomic_fetch_add(&run->next, 1);

		if (i >= run->count)
			break;

		struct request *request = &run->requests[i];

		request->start_ms = now_ms();
		request->status = send_request(run, request);
		request->end_ms = now_ms();
	}
	return NULL;
}

/* Splits one input line into a request; the strings point into line. */
static int parse_line(char *line, struct request *request)
{
	char *save = NULL;

	line[strcspn(line, "\r\n")] = '\0';
	request->tag = strtok_r(line, " ", &save);
	request->method = strtok_r(NULL, " ", &save);
	request->path = strtok_r(NULL, " ", &save);
	request->body = strtok_r(NULL, "", &save);
	return request->tag && request->method && request->path ? 0 : -1;
}

/* Reads every request line of in; the caller frees requests and each
 * request's text. */
static int read_requests(FILE *in, struct request **requests, size_t *count)
{
	size_t capacity = 0;
	char *line = NULL;
	size_t line_size = 0;
	long number = 0;

	*requests = NULL;
	*count = 0;
	while (getline(&line, &line_size, in) >= 0) {
		number++;
		if (line[0] == '\n' || line[0] == '\0')
			continue;
		if (*count == capacity) {
			size_t grown = capacity ? 2 * capacity : 256;
			struct request *more =
			        realloc(*requests, grown * sizeof(**requests));

			if (more == NULL) {
				free(line);
				return -1;
			}
			*requests = more;
			capacity = grown;
		}

		struct request *request = &(*requests)[*count];
		char *copy = strdup(line);

		memset(request, 0, sizeof(*request));
		request->text = copy;
		if (copy == NULL || parse_line(copy, request) != 0) {
			fprintf(stderr,
			        "input line %ld: expected \"TAG METHOD PATH "
			        "[BODY]\"\n",
			        number);
			free(copy);
			free(line);
			return -1;
		}
		(*count)++;
	}
	free(line);
	return 0;
}

static int parse_options(int argc, char **argv, int *port, int *workers)
{
	static const struct option long_options[] = {
	        {"port", required_argument, NULL, 'p'},
	        {"workers", required_argument, NULL, 'w'},
	        {NULL, 0, NULL, 0}};
	int opt;

	*port = 0;
	*workers = 8;
	while ((opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		char *end = NULL;
		long value = strtol(optarg, &end, 10);

		if (end == optarg || *end != '\0' || (opt != 'p' && opt != 'w'))
			return -1;
		if (opt == 'p')
			*port = value > 0 && value <= 65535 ? (int)value : 0;
		else
			*workers = value > 0 && value <= 1024 ? (int)value : 0;
	}
	if (*port <= 0 || *port > 65535) {
		fprintf(stderr, "missing or invalid --port: expected the TCP "
		                "port of fleetauthd on 127.0.0.1\n");
		return -1;
	}
	if (*workers < 1 || *workers > MAX_WORKERS) {
		fprintf(stderr, "invalid --workers %d: expected 1 to %d\n",
		        *workers, MAX_WORKERS);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct run run = {0};
	pthread_t threads[MAX_WORKERS];
	int port, workers, started = 0, result = 1;

	if (parse_options(argc, argv, &port, &workers) != 0) {
		fprintf(stderr, "usage: fleetauth-scale-api --port PORT "
		                "[--workers N] < REQUESTS\n");
		return 2;
	}
	run.port = port;
	run.credential = getenv("FLEETAUTH_ADMIN_KEY");
	if (run.credential == NULL || run.credential[0] == '\0') {
		fprintf(stderr, "FLEETAUTH_ADMIN_KEY is not set: export the "
		                "API key of the stack's env file\n");
		return 2;
	}
	if (read_requests(stdin, &run.requests, &run.count) != 0)
		goto out;
	atomic_init(&run.next, 0);
	for (; started < workers; started++)
		if (pthread_create(&threads[started], NULL, worker, &run) != 0)
			break;
	for (int i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	if (started == 0) {
		fprintf(stderr, "starting the worker threads failed\n");
		goto out;
	}
	result = 0;
	for (size_t i = 0; i < run.count; i++) {
		const struct request *request = &run.requests[i];

		printf("%s %lld %lld %d\n", request->tag, request->start_ms,
		       request->end_ms, request->status);
		if (request->status < 200 || request->status > 299)
			result = 1;
	}
out:
	for (size_t i = 0; i < run.count; i++)
		free(run.requests[i].text);
	free(run.requests);
	return result;
}
