/*
 * fleetauth-scale-watch: holds many MQTT clients connected to several
 * brokers and prints, with a wall-clock timestamp, every client that a
 * broker disconnects. The scale scenarios use it to check which clients a
 * revocation disconnects on which broker, and how long after the commit.
 *
 *   fleetauth-scale-watch --ports P1,P2,... --clients FILE [options]
 *
 * Client i of FILE (lines "client_id username password [var]", as written
 * by fleetauth-bench-mint) connects to 127.0.0.1 on port P[i mod N].
 * Output, one line per event, times in milliseconds since the epoch
 * (CLOCK_REALTIME):
 *
 *   ready MS CONNECTED REFUSED FAILED   all CONNECTs have an outcome
 *   refused MS CLIENT_ID PORT RC        CONNACK with a non-zero code
 *   failed MS CLIENT_ID PORT            connection lost before CONNACK
 *   dropped MS CLIENT_ID PORT RC        connected client lost its connection
 *   alive CLIENT_ID PORT                still connected at the end
 *   end MS
 *
 * The hold after "ready" ends after --hold seconds, on SIGTERM or SIGINT, or
 * --grace seconds after the --stop-after-drops'th drop. One thread drives
 * every client with poll(2) and the libmosquitto loop_read, loop_write and
 * loop_misc calls.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <mosquitto.h>

#define MAX_PORTS 16
#define KEEPALIVE_S 300
#define POLL_TIMEOUT_MS 20
#define MISC_INTERVAL_MS 1000
#define FDS_PER_CLIENT 3

enum client_state {
	CLIENT_WAITING,
	CLIENT_CONNECTING,
	CLIENT_CONNECTED,
	CLIENT_REFUSED,
	CLIENT_FAILED,
	CLIENT_DROPPED,
};

struct watch;

struct client {
	struct watch *watch;
	struct mosquitto *mosq;
	char *client_id;
	char *username;
	char *password;
	int port;
	enum client_state state;
};

struct options {
	int ports[MAX_PORTS];
	int port_count;
	const char *clients_path;
	int concurrency;
	double hold_s;
	double timeout_s;
	double grace_s;
	long stop_after_drops;
	int protocol;
};

struct watch {
	struct options options;
	struct client *clients;
	size_t count;
	size_t pending;
	size_t outcomes;
	size_t connected;
	size_t refused;
	size_t failed;
	long dropped;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: fleetauth-scale-watch --ports P1,P2,... --clients FILE"
	        " [options]\n"
	        "  --ports LIST          broker ports on 127.0.0.1, "
	        "comma-separated (at most %d)\n"
	        "  --clients FILE        lines 'client_id username password "
	        "[var]'\n"
	        "  --concurrency N       CONNECTs waiting for a CONNACK at "
	        "most (default 64)\n"
	        "  --hold S              seconds to hold after ready "
	        "(default 30)\n"
	        "  --timeout S           seconds allowed for the connect "
	        "phase (default 120)\n"
	        "  --stop-after-drops N  end the hold GRACE seconds after the "
	        "Nth drop\n"
	        "  --grace S             seconds to wait after that drop "
	        "(default 1)\n"
	        "  --mqtt-version 311|5  protocol (default 311)\n",
	        MAX_PORTS);
}

static int parse_ports(const char *text, struct options *o)
{
	char *copy, *save = NULL, *field, *end;
	int result = -1;

	copy = strdup(text);
	if (copy == NULL)
		return -1;
	o->port_count = 0;
	for (field = strtok_r(copy, ",", &save); field != NULL;
	     field = strtok_r(NULL, ",", &save)) {
		long port = strtol(field, &end, 10);

		if (*end != '\0' || port < 1 || port > 65535 ||
		    o->port_count == MAX_PORTS) {
			fprintf(stderr,
			        "invalid --ports '%s': expected up to %d "
			        "comma-separated ports 1 to 65535\n",
			        text, MAX_PORTS);
			goto out;
		}
		o->ports[o->port_count++] = (int)port;
	}
	result = o->port_count > 0 ? 0 : -1;
out:
	free(copy);
	return result;
}

static int parse_number(const char *name, const char *text, double min,
                        double max, double *value)
{
	char *end;

	errno = 0;
	*value = strtod(text, &end);
	if (errno != 0 || *end != '\0' || *value < min || *value > max) {
		fprintf(stderr, "invalid %s '%s': expected %g to %g\n", name,
		        text, min, max);
		return -1;
	}
	return 0;
}

/* Parses argv into o. Returns 0, 1 after --help, or -1 on invalid input. */
static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option long_options[] = {
	        {"ports", required_argument, NULL, 'p'},
	        {"clients", required_argument, NULL, 'c'},
	        {"concurrency", required_argument, NULL, 'n'},
	        {"hold", required_argument, NULL, 'h'},
	        {"timeout", required_argument, NULL, 't'},
	        {"stop-after-drops", required_argument, NULL, 's'},
	        {"grace", required_argument, NULL, 'g'},
	        {"mqtt-version", required_argument, NULL, 'v'},
	        {"help", no_argument, NULL, 'H'},
	        {NULL, 0, NULL, 0},
	};
	double value;
	int opt, rc = 0;

	memset(o, 0, sizeof(*o));
	o->concurrency = 64;
	o->hold_s = 30;
	o->timeout_s = 120;
	o->grace_s = 1;
	o->protocol = MQTT_PROTOCOL_V311;
	while (rc == 0 &&
	       (opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		switch (opt) {
		case 'p':
			rc = parse_ports(optarg, o);
			break;
		case 'c':
			o->clients_path = optarg;
			break;
		case 'n':
			rc = parse_number("--concurrency", optarg, 1, 100000,
			                  &value);
			o->concurrency = (int)value;
			break;
		case 'h':
			rc = parse_number("--hold", optarg, 0, 3600,
			                  &o->hold_s);
			break;
		case 't':
			rc = parse_number("--timeout", optarg, 1, 3600,
			                  &o->timeout_s);
			break;
		case 's':
			rc = parse_number("--stop-after-drops", optarg, 1, 1e7,
			                  &value);
			o->stop_after_drops = (long)value;
			break;
		case 'g':
			rc = parse_number("--grace", optarg, 0, 600,
			                  &o->grace_s);
			break;
		case 'v':
			if (strcmp(optarg, "5") == 0)
				o->protocol = MQTT_PROTOCOL_V5;
			else if (strcmp(optarg, "311") != 0)
				rc = -1;
			break;
		case 'H':
			usage(stdout);
			return 1;
		default:
			rc = -1;
		}
	}
	if (rc == 0 && (o->port_count == 0 || o->clients_path == NULL)) {
		fprintf(stderr, "missing --ports or --clients\n");
		rc = -1;
	}
	if (rc != 0)
		usage(stderr);
	return rc;
}

/* Reads the clients file into w->clients; the strings are owned by w. */
static int read_clients(struct watch *w)
{
	FILE *file;
	char *line = NULL;
	size_t line_size = 0, capacity = 0;
	int result = -1;

	file = fopen(w->options.clients_path, "r");
	if (file == NULL) {
		perror(w->options.clients_path);
		return -1;
	}
	while (getline(&line, &line_size, file) >= 0) {
		char *fields[4], *save = NULL, *field;
		int nfields = 0;
		struct client *c;

		for (field = strtok_r(line, " \t\r\n", &save);
		     field != NULL && nfields < 4;
		     field = strtok_r(NULL, " \t\r\n", &save))
			fields[nfields++] = field;
		if (nfields == 0 || fields[0][0] == '#')
			continue;
		if (nfields < 3) {
			fprintf(stderr,
			        "%s: line %zu has fewer than 3 fields\n",
			        w->options.clients_path, w->count + 1);
			goto out;
		}
		if (w->count == capacity) {
			size_t next = capacity ? capacity * 2 : 1024;
			struct client *grown;

			grown = realloc(w->clients, next * sizeof(*grown));
			if (grown == NULL)
				goto out;
			w->clients = grown;
			capacity = next;
		}
		c = &w->clients[w->count];
		memset(c, 0, sizeof(*c));
		c->client_id = strdup(fields[0]);
		c->username = strdup(fields[1]);
		c->password = strdup(fields[2]);
		c->watch = w;
		c->port = w->options.ports[w->count % w->options.port_count];
		w->count++;
		if (c->client_id == NULL || c->username == NULL ||
		    c->password == NULL)
			goto out;
	}
	result = w->count > 0 ? 0 : -1;
	if (w->count == 0)
		fprintf(stderr, "%s: no clients\n", w->options.clients_path);
out:
	free(line);
	(void)fclose(file); /* read-only: nothing is lost */
	return result;
}

static void client_outcome(struct watch *w, struct client *c,
                           enum client_state state)
{
	if (c->state == CLIENT_CONNECTING) {
		w->pending--;
		w->outcomes++;
	}
	c->state = state;
}

static void on_connect_v(struct mosquitto *mosq, void *userdata, int rc,
                         int flags, const mosquitto_property *props)
{
	struct client *c = userdata;
	struct watch *w = c->watch;

	(void)mosq;
	(void)flags;
	(void)props;
	if (c->state != CLIENT_CONNECTING)
		return;
	if (rc != 0) {
		w->refused++;
		printf("refused %lld %s %d %d\n", now_ms(), c->client_id,
		       c->port, rc);
		client_outcome(w, c, CLIENT_REFUSED);
		return;
	}
	w->connected++;
	client_outcome(w, c, CLIENT_CONNECTED);
}

static void on_disconnect_v(struct mosquitto *mosq, void *userdata, int rc,
                            const mosquitto_property *props)
{
	struct client *c = userdata;
	struct watch *w = c->watch;

	(void)mosq;
	(void)props;
	if (c->state == CLIENT_CONNECTING) {
		w->failed++;
		printf("failed %lld %s %d\n", now_ms(), c->client_id, c->port);
		client_outcome(w, c, CLIENT_FAILED);
	} else if (c->state == CLIENT_CONNECTED) {
		w->dropped++;
		w->connected--;
		printf("dropped %lld %s %d %d\n", now_ms(), c->client_id,
		       c->port, rc);
		c->state = CLIENT_DROPPED;
	}
}

static int client_start(struct watch *w, struct client *c)
{
	int rc;

	c->mosq = mosquitto_new(c->client_id, true, c);
	if (c->mosq == NULL)
		return -1;
	mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION,
	                     w->options.protocol);
	mosquitto_connect_v5_callback_set(c->mosq, on_connect_v);
	mosquitto_disconnect_v5_callback_set(c->mosq, on_disconnect_v);
	mosquitto_username_pw_set(c->mosq, c->username, c->password);
	c->state = CLIENT_CONNECTING;
	w->pending++;
	rc = mosquitto_connect_async(c->mosq, "127.0.0.1", c->port,
	                             KEEPALIVE_S);
	if (rc != MOSQ_ERR_SUCCESS) {
		w->failed++;
		printf("failed %lld %s %d\n", now_ms(), c->client_id, c->port);
		client_outcome(w, c, CLIENT_FAILED);
	}
	return 0;
}

static int client_active(const struct client *c)
{
	return c->state == CLIENT_CONNECTING || c->state == CLIENT_CONNECTED;
}

/*
 * Runs one poll(2) over the sockets of the active clients and services the
 * ready ones. With pending_only, only clients still waiting for their
 * CONNACK take part. During the connect phase the connected clients have
 * nothing to do (the keepalive is KEEPALIVE_S). Polling thousands of idle
 * sockets on every wakeup would cost this process more CPU than the
 * broker spends on the CONNECTs. fds and map have room for w->count
 * entries.
 */
static void poll_once(struct watch *w, struct pollfd *fds, size_t *map,
                      bool pending_only)
{
	size_t i, n = 0;
	int ready;

	for (i = 0; i < w->count; i++) {
		struct client *c = &w->clients[i];
		int fd;

		if (!client_active(c) ||
		    (pending_only && c->state != CLIENT_CONNECTING))
			continue;
		fd = mosquitto_socket(c->mosq);
		if (fd < 0) {
			if (c->state == CLIENT_CONNECTING) {
				w->failed++;
				printf("failed %lld %s %d\n", now_ms(),
				       c->client_id, c->port);
				client_outcome(w, c, CLIENT_FAILED);
			}
			continue;
		}
		fds[n].fd = fd;
		fds[n].events = POLLIN;
		if (mosquitto_want_write(c->mosq))
			fds[n].events |= POLLOUT;
		fds[n].revents = 0;
		map[n++] = i;
	}
	ready = poll(fds, n, POLL_TIMEOUT_MS);
	if (ready <= 0)
		return;
	for (i = 0; i < n; i++) {
		struct client *c = &w->clients[map[i]];

		if (fds[i].revents & (POLLIN | POLLERR | POLLHUP))
			mosquitto_loop_read(c->mosq, 16);
		if ((fds[i].revents & POLLOUT) && client_active(c))
			mosquitto_loop_write(c->mosq, 16);
	}
}

static void loop_misc_all(struct watch *w)
{
	size_t i;

	for (i = 0; i < w->count; i++)
		if (client_active(&w->clients[i]))
			mosquitto_loop_misc(w->clients[i].mosq);
}

/* Starts CONNECTs up to the concurrency limit and loops until each has an
 * outcome or the timeout passes. Returns 0, or -1 on timeout. */
static int connect_phase(struct watch *w, struct pollfd *fds, size_t *map)
{
	long long deadline = now_ms() + (long long)(w->options.timeout_s * 1e3);
	size_t next = 0;

	while (w->outcomes < w->count && !stop_requested) {
		while (next < w->count &&
		       w->pending < (size_t)w->options.concurrency) {
			if (client_start(w, &w->clients[next]) != 0)
				return -1;
			next++;
		}
		poll_once(w, fds, map, true);
		if (now_ms() > deadline) {
			fprintf(stderr,
			        "connect phase timed out after %g s with %zu "
			        "of %zu outcomes\n",
			        w->options.timeout_s, w->outcomes, w->count);
			return -1;
		}
	}
	return 0;
}

static void hold_phase(struct watch *w, struct pollfd *fds, size_t *map)
{
	long long end = now_ms() + (long long)(w->options.hold_s * 1e3);
	long long last_misc = now_ms();
	long long stop_at = 0;

	while (!stop_requested && now_ms() < end) {
		poll_once(w, fds, map, false);
		if (now_ms() - last_misc >= MISC_INTERVAL_MS) {
			loop_misc_all(w);
			last_misc = now_ms();
		}
		if (w->options.stop_after_drops > 0 && stop_at == 0 &&
		    w->dropped >= w->options.stop_after_drops)
			stop_at = now_ms() +
			          (long long)(w->options.grace_s * 1e3);
		if (stop_at != 0 && now_ms() >= stop_at)
			break;
	}
}

/*
 * Raises the soft open-file limit to the hard one and checks that count
 * clients fit. libmosquitto 2.0 opens 3 descriptors per client (the socket
 * and a socket pair that wakes its loop). Returns 0 or -1.
 */
static int raise_fd_limit(size_t count)
{
	struct rlimit limit;

	if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
		return 0;
	limit.rlim_cur = limit.rlim_max;
	setrlimit(RLIMIT_NOFILE, &limit);
	if (limit.rlim_cur != RLIM_INFINITY &&
	    count * FDS_PER_CLIENT + 16 > limit.rlim_cur) {
		fprintf(stderr,
		        "%zu clients need %zu file descriptors but the limit "
		        "is %llu: split the clients file over several "
		        "processes or raise the hard limit (ulimit -Hn)\n",
		        count, count * FDS_PER_CLIENT + 16,
		        (unsigned long long)limit.rlim_cur);
		return -1;
	}
	return 0;
}

static void free_clients(struct watch *w)
{
	size_t i;

	for (i = 0; i < w->count; i++) {
		struct client *c = &w->clients[i];

		if (c->mosq != NULL)
			mosquitto_destroy(c->mosq);
		if (c->password != NULL)
			memset(c->password, 0, strlen(c->password));
		free(c->client_id);
		free(c->username);
		free(c->password);
	}
	free(w->clients);
}

int main(int argc, char **argv)
{
	struct watch w;
	struct pollfd *fds = NULL;
	size_t *map = NULL, i;
	int status = 2, rc;

	memset(&w, 0, sizeof(w));
	rc = parse_options(argc, argv, &w.options);
	if (rc != 0)
		return rc > 0 ? 0 : 2;
	(void)setvbuf(stdout, NULL, _IOLBF, 0);
	(void)signal(SIGTERM, on_signal);
	(void)signal(SIGINT, on_signal);
	(void)signal(SIGPIPE, SIG_IGN);
	mosquitto_lib_init();
	if (read_clients(&w) != 0 || raise_fd_limit(w.count) != 0)
		goto out;
	fds = calloc(w.count, sizeof(*fds));
	map = calloc(w.count, sizeof(*map));
	if (fds == NULL || map == NULL)
		goto out;
	if (connect_phase(&w, fds, map) != 0)
		goto out;
	printf("ready %lld %zu %zu %zu\n", now_ms(), w.connected, w.refused,
	       w.failed);
	hold_phase(&w, fds, map);
	for (i = 0; i < w.count; i++)
		if (w.clients[i].state == CLIENT_CONNECTED)
			printf("alive %s %d\n", w.clients[i].client_id,
			       w.clients[i].port);
	printf("end %lld\n", now_ms());
	status = 0;
out:
	free(fds);
	free(map);
	free_clients(&w);
	mosquitto_lib_cleanup();
	return status;
}
