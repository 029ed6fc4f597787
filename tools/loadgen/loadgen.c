/*
 * fleetauth-loadgen: opens many MQTT clients from one process and reports
 * the CONNECT rate and latency, refusals and message throughput. Every
 * client is a non-blocking libmosquitto handle, and one epoll(7) loop drives
 * all sockets with mosquitto_loop_read, mosquitto_loop_write and
 * mosquitto_loop_misc. No thread is started per client, and each wakeup
 * costs time in proportion to the sockets that are ready.
 *
 * Phases: connect (at --rate CONNECTs per second, at most --concurrency
 * pending at a time), then hold (--hold seconds, publishing at --pub-rate),
 * then disconnect. Run with --help for the options.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "loadgen.h"

#define TOPIC_MAX 512
#define POLL_TIMEOUT_MS 5
#define MAX_EVENTS 1024
#define MISC_INTERVAL_NS 1000000000LL
#define DRAIN_NS 500000000LL /* time after the hold to flush DISCONNECTs */
#define SETTLE_NS                                                              \
	2000000000LL  /* maximum wait for SUBACKs before publishing            \
	               */
#define FD_RESERVE 32 /* descriptors kept for files and stdio */

struct options {
	const char *host;
	int port;
	const char *clients_file;
	const char *cert_dir;
	const char *cafile;
	size_t count;
	double rate;     /* CONNECTs per second, 0 = no limit */
	int concurrency; /* pending CONNECTs at most, 0 = no limit */
	int protocol;    /* MQTT_PROTOCOL_V311 or MQTT_PROTOCOL_V5 */
	int keepalive;   /* seconds */
	double hold;     /* seconds */
	double pub_rate; /* messages per second over all clients; 0 = none */
	bool pub_max;    /* publish as fast as the sockets accept */
	const char *pub_topic;
	const char *sub_topic;
	int qos;
	size_t payload_size;
	double timeout; /* seconds for the whole run */
	bool json;
};

/* Everything the callbacks update; one per process. */
struct run {
	struct options options;
	struct client_list specs;
	struct client *clients;
	int epoll_fd;
	struct counters counters;
	double *latencies_ms;
	size_t latency_count;
	size_t pending;  /* clients in CLIENT_CONNECTING */
	size_t finished; /* clients past CLIENT_CONNECTING */
	size_t suback_pending;
	bool holding;
	int64_t first_start_ns;
	int64_t last_connack_ns;
	char *payload;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: fleetauth-loadgen --port PORT (--clients FILE | "
	        "--cert-dir DIR --cafile FILE) [options]\n"
	        "\n"
	        "  --host ADDR         broker address (default 127.0.0.1)\n"
	        "  --port PORT         broker port (required)\n"
	        "  --clients FILE      token clients: lines \"client_id "
	        "username password [var]\"\n"
	        "  --cert-dir DIR      certificate clients: DIR/NAME.pem and "
	        "DIR/NAME.key;\n"
	        "                      NAME is the client id and username\n"
	        "  --cafile FILE       CA that signed the broker's "
	        "certificate (enables TLS)\n"
	        "  --count N           use the first N clients (default all)\n"
	        "  --rate R            CONNECTs started per second (default 0: "
	        "no limit)\n"
	        "  --concurrency N     CONNECTs pending at most (default 64, "
	        "0: "
	        "no limit)\n"
	        "  --mqtt-version V    311 or 5 (default 311)\n"
	        "  --keepalive S       keepalive in seconds (default 60)\n"
	        "  --hold S            seconds to stay connected after the "
	        "last CONNACK and SUBACK (default 0)\n"
	        "  --pub-topic T       topic template to publish to; %%c "
	        "client id, %%u username,\n"
	        "                      %%i index, %%v fourth field of the "
	        "clients file\n"
	        "  --pub-rate R        messages per second over all clients, "
	        "or \"max\" to publish\n"
	        "                      whenever a client's socket has nothing "
	        "queued (default 0)\n"
	        "  --sub-topic T       topic filter template each client "
	        "subscribes to\n"
	        "  --qos Q             QoS of publishes and subscriptions, 0 "
	        "or 1 (default 0)\n"
	        "                      (at QoS 0 the report counts a publish "
	        "as acknowledged\n"
	        "                      once libmosquitto has written it)\n"
	        "  --payload-size B    payload bytes (default 64)\n"
	        "  --timeout S         limit for the whole run in seconds "
	        "(default 120)\n"
	        "  --json              print one JSON object instead of "
	        "text\n");
}

static int parse_double(const char *name, const char *text, double low,
                        double high, double *value)
{
	char *end;

	errno = 0;
	*value = strtod(text, &end);
	if (errno != 0 || end == text || *end != '\0' || *value < low ||
	    *value > high) {
		fprintf(stderr,
		        "invalid %s \"%s\": expected a number from %g "
		        "to %g\n",
		        name, text, low, high);
		return -1;
	}
	return 0;
}

static int parse_int(const char *name, const char *text, long low, long high,
                     long *value)
{
	char *end;

	errno = 0;
	*value = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || *value < low ||
	    *value > high) {
		fprintf(stderr,
		        "invalid %s \"%s\": expected an integer from "
		        "%ld to %ld\n",
		        name, text, low, high);
		return -1;
	}
	return 0;
}

enum {
	OPT_HOST = 256,
	OPT_PORT,
	OPT_CLIENTS,
	OPT_CERT_DIR,
	OPT_CAFILE,
	OPT_COUNT,
	OPT_RATE,
	OPT_CONCURRENCY,
	OPT_VERSION,
	OPT_KEEPALIVE,
	OPT_HOLD,
	OPT_PUB_TOPIC,
	OPT_PUB_RATE,
	OPT_SUB_TOPIC,
	OPT_QOS,
	OPT_PAYLOAD,
	OPT_TIMEOUT,
	OPT_JSON,
	OPT_HELP
};

static const struct option long_options[] = {
        {"host", required_argument, NULL, OPT_HOST},
        {"port", required_argument, NULL, OPT_PORT},
        {"clients", required_argument, NULL, OPT_CLIENTS},
        {"cert-dir", required_argument, NULL, OPT_CERT_DIR},
        {"cafile", required_argument, NULL, OPT_CAFILE},
        {"count", required_argument, NULL, OPT_COUNT},
        {"rate", required_argument, NULL, OPT_RATE},
        {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
        {"mqtt-version", required_argument, NULL, OPT_VERSION},
        {"keepalive", required_argument, NULL, OPT_KEEPALIVE},
        {"hold", required_argument, NULL, OPT_HOLD},
        {"pub-topic", required_argument, NULL, OPT_PUB_TOPIC},
        {"pub-rate", required_argument, NULL, OPT_PUB_RATE},
        {"sub-topic", required_argument, NULL, OPT_SUB_TOPIC},
        {"qos", required_argument, NULL, OPT_QOS},
        {"payload-size", required_argument, NULL, OPT_PAYLOAD},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0}};

/* Applies one option; returns 0, or -1 after printing the error. */
static int apply_option(struct options *o, int opt, const char *arg)
{
	long n = 0;
	int rc = 0;

	switch (opt) {
	case OPT_HOST:
		o->host = arg;
		break;
	case OPT_PORT:
		rc = parse_int("--port", arg, 1, 65535, &n);
		o->port = (int)n;
		break;
	case OPT_CLIENTS:
		o->clients_file = arg;
		break;
	case OPT_CERT_DIR:
		o->cert_dir = arg;
		break;
	case OPT_CAFILE:
		o->cafile = arg;
		break;
	case OPT_COUNT:
		rc = parse_int("--count", arg, 1, 1000000, &n);
		o->count = (size_t)n;
		break;
	case OPT_RATE:
		rc = parse_double("--rate", arg, 0, 1e7, &o->rate);
		break;
	case OPT_CONCURRENCY:
		rc = parse_int("--concurrency", arg, 0, 1000000, &n);
		o->concurrency = (int)n;
		break;
	case OPT_VERSION:
		if (strcmp(arg, "311") == 0) {
			o->protocol = MQTT_PROTOCOL_V311;
		} else if (strcmp(arg, "5") == 0) {
			o->protocol = MQTT_PROTOCOL_V5;
		} else {
			fprintf(stderr,
			        "invalid --mqtt-version \"%s\": "
			        "expected 311 or 5\n",
			        arg);
			rc = -1;
		}
		break;
	case OPT_KEEPALIVE:
		rc = parse_int("--keepalive", arg, 5, 65535, &n);
		o->keepalive = (int)n;
		break;
	case OPT_HOLD:
		rc = parse_double("--hold", arg, 0, 3600, &o->hold);
		break;
	case OPT_PUB_TOPIC:
		o->pub_topic = arg;
		break;
	case OPT_PUB_RATE:
		if (strcmp(arg, "max") == 0)
			o->pub_max = true;
		else
			rc = parse_double("--pub-rate", arg, 0, 1e7,
			                  &o->pub_rate);
		break;
	case OPT_SUB_TOPIC:
		o->sub_topic = arg;
		break;
	case OPT_QOS:
		rc = parse_int("--qos", arg, 0, 1, &n);
		o->qos = (int)n;
		break;
	case OPT_PAYLOAD:
		rc = parse_int("--payload-size", arg, 0, 1000000, &n);
		o->payload_size = (size_t)n;
		break;
	case OPT_TIMEOUT:
		rc = parse_double("--timeout", arg, 1, 3600, &o->timeout);
		break;
	case OPT_JSON:
		o->json = true;
		break;
	default:
		rc = -1;
		break;
	}
	return rc;
}

/* Parses argv into o; returns 0, 1 after --help, or -1 on an error. */
static int parse_options(int argc, char **argv, struct options *o)
{
	int opt;

	*o = (struct options){.host = "127.0.0.1",
	                      .concurrency = 64,
	                      .protocol = MQTT_PROTOCOL_V311,
	                      .keepalive = 60,
	                      .payload_size = 64,
	                      .timeout = 120};
	while ((opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		if (opt == OPT_HELP) {
			usage(stdout);
			return 1;
		}
		if (opt == '?' || apply_option(o, opt, optarg) != 0) {
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "unexpected argument \"%s\"\n", argv[optind]);
		return -1;
	}
	if (o->port == 0) {
		fprintf(stderr, "missing --port: give the port of a broker "
		                "that you started\n");
		return -1;
	}
	if ((o->clients_file == NULL) == (o->cert_dir == NULL)) {
		fprintf(stderr, "give exactly one of --clients and "
		                "--cert-dir\n");
		return -1;
	}
	if (o->cert_dir != NULL && o->cafile == NULL) {
		fprintf(stderr, "--cert-dir needs --cafile: certificate "
		                "clients connect over TLS\n");
		return -1;
	}
	if ((o->pub_rate > 0 || o->pub_max) && o->pub_topic == NULL) {
		fprintf(stderr, "--pub-rate needs --pub-topic\n");
		return -1;
	}
	return 0;
}

/* Raises the soft descriptor limit to the hard one and checks that it
 * leaves room for one socket per client. */
static int raise_fd_limit(size_t clients)
{
	struct rlimit limit;

	if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
		perror("getrlimit(RLIMIT_NOFILE)");
		return -1;
	}
	if (limit.rlim_cur < limit.rlim_max) {
		limit.rlim_cur = limit.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
			perror("setrlimit(RLIMIT_NOFILE)");
			return -1;
		}
	}
	if (limit.rlim_cur != RLIM_INFINITY &&
	    limit.rlim_cur < clients + FD_RESERVE) {
		fprintf(stderr,
		        "open file limit %llu is too low for %zu "
		        "clients: raise the hard limit (ulimit -Hn) to at "
		        "least %zu\n",
		        (unsigned long long)limit.rlim_cur, clients,
		        clients + FD_RESERVE);
		return -1;
	}
	return 0;
}

static void client_finish(struct client *client, enum client_state state)
{
	struct run *run = client->run;

	if (client->state == CLIENT_CONNECTING) {
		run->pending--;
		run->finished++;
	}
	client->state = state;
}

static void subscribe_client(struct client *client)
{
	struct run *run = client->run;
	int rc;

	rc = mosquitto_subscribe(client->mosq, NULL, client->sub_topic,
	                         run->options.qos);
	if (rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "subscribe of client %s failed: %s\n",
		        client->spec->client_id, mosquitto_strerror(rc));
		return;
	}
	client->suback_pending = 1;
	run->suback_pending++;
}

static void on_connect(struct mosquitto *mosq, void *userdata, int rc,
                       int flags, const mosquitto_property *props)
{
	struct client *client = userdata;
	struct run *run = client->run;

	(void)mosq;
	(void)flags;
	(void)props;
	if (client->state != CLIENT_CONNECTING)
		return;
	client->connack_ns = now_ns();
	client->connack_code = rc;
	if (rc != 0) {
		run->counters.refused++;
		run->counters.last_refusal_code = rc;
		client_finish(client, CLIENT_REFUSED);
		return;
	}
	run->counters.connected++;
	run->latencies_ms[run->latency_count++] =
	        (double)(client->connack_ns - client->start_ns) / 1e6;
	if (client->connack_ns > run->last_connack_ns)
		run->last_connack_ns = client->connack_ns;
	client_finish(client, CLIENT_CONNECTED);
	if (client->sub_topic != NULL)
		subscribe_client(client);
}

static void on_disconnect(struct mosquitto *mosq, void *userdata, int rc,
                          const mosquitto_property *props)
{
	struct client *client = userdata;
	struct run *run = client->run;

	(void)mosq;
	(void)props;
	if (client->state == CLIENT_CONNECTING) {
		run->counters.failed++;
		client_finish(client, CLIENT_FAILED);
	} else if (client->state == CLIENT_CONNECTED) {
		if (rc != 0)
			run->counters.dropped++;
		client->state = rc != 0 ? CLIENT_DROPPED : CLIENT_IDLE;
	}
	if (client->suback_pending) {
		client->suback_pending = 0;
		run->suback_pending--;
	}
}

static void on_subscribe(struct mosquitto *mosq, void *userdata, int mid,
                         int qos_count, const int *granted_qos,
                         const mosquitto_property *props)
{
	struct client *client = userdata;
	struct run *run = client->run;
	int i;

	(void)mosq;
	(void)mid;
	(void)props;
	for (i = 0; i < qos_count; i++) {
		if (granted_qos[i] >= 0x80)
			run->counters.sub_denied++;
		else
			run->counters.sub_granted++;
	}
	if (client->suback_pending) {
		client->suback_pending = 0;
		run->suback_pending--;
	}
}

static void on_publish(struct mosquitto *mosq, void *userdata, int mid,
                       int reason_code, const mosquitto_property *props)
{
	struct client *client = userdata;
	struct run *run = client->run;

	(void)mosq;
	(void)mid;
	(void)props;
	if (client->inflight > 0)
		client->inflight--;
	if (reason_code >= 0x80)
		run->counters.pub_denied++;
	else
		run->counters.pub_acked++;
}

static void on_message(struct mosquitto *mosq, void *userdata,
                       const struct mosquitto_message *message,
                       const mosquitto_property *props)
{
	struct client *client = userdata;
	struct run *run = client->run;

	(void)mosq;
	(void)message;
	(void)props;
	run->counters.received_total++;
	if (run->holding)
		run->counters.received++;
}

static int expand_topics(struct run *run, struct client *client)
{
	char topic[TOPIC_MAX];
	const struct options *o = &run->options;

	if (o->pub_topic != NULL) {
		if (topic_expand(o->pub_topic, client->spec, client->index,
		                 topic, sizeof(topic)) != 0)
			goto invalid;
		client->pub_topic = strdup(topic);
		if (client->pub_topic == NULL)
			return -1;
	}
	if (o->sub_topic != NULL) {
		if (topic_expand(o->sub_topic, client->spec, client->index,
		                 topic, sizeof(topic)) != 0)
			goto invalid;
		client->sub_topic = strdup(topic);
		if (client->sub_topic == NULL)
			return -1;
	}
	return 0;
invalid:
	fprintf(stderr,
	        "invalid topic template for client %s: use only "
	        "%%c, %%u, %%i, %%v and %%%%, and at most %d bytes\n",
	        client->spec->client_id, TOPIC_MAX - 1);
	return -1;
}

/* Creates the libmosquitto handle of client with its credentials, TLS
 * files and callbacks. Returns 0 or -1 after printing the error. */
static int client_setup(struct run *run, struct client *client)
{
	const struct client_spec *spec = client->spec;
	const struct options *o = &run->options;
	int rc;

	client->mosq = mosquitto_new(spec->client_id, true, client);
	if (client->mosq == NULL) {
		perror("mosquitto_new");
		return -1;
	}
	mosquitto_int_option(client->mosq, MOSQ_OPT_PROTOCOL_VERSION,
	                     o->protocol);
	rc = mosquitto_username_pw_set(client->mosq, spec->username,
	                               spec->password);
	if (rc == MOSQ_ERR_SUCCESS && o->cafile != NULL)
		rc = mosquitto_tls_set(client->mosq, o->cafile, NULL,
		                       spec->certfile, spec->keyfile, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "setting up client %s failed: %s\n",
		        spec->client_id, mosquitto_strerror(rc));
		return -1;
	}
	mosquitto_connect_v5_callback_set(client->mosq, on_connect);
	mosquitto_disconnect_v5_callback_set(client->mosq, on_disconnect);
	mosquitto_subscribe_v5_callback_set(client->mosq, on_subscribe);
	mosquitto_publish_v5_callback_set(client->mosq, on_publish);
	mosquitto_message_v5_callback_set(client->mosq, on_message);
	return 0;
}

static bool client_active(const struct client *client)
{
	return client->mosq != NULL && mosquitto_socket(client->mosq) >= 0 &&
	       (client->state == CLIENT_CONNECTING ||
	        client->state == CLIENT_CONNECTED);
}

/* Registers the client's socket with epoll, or updates whether it waits
 * for EPOLLOUT, after anything that may have queued or flushed packets.
 * libmosquitto closes the socket itself on errors, and closing removes it
 * from the epoll set. */
static void watch_client(struct run *run, struct client *client)
{
	struct epoll_event event = {.data.ptr = client};
	int fd = client->mosq != NULL ? mosquitto_socket(client->mosq) : -1;
	bool out;

	if (fd < 0) {
		client->fd = -1;
		return;
	}
	out = mosquitto_want_write(client->mosq);
	event.events = EPOLLIN | (out ? EPOLLOUT : 0);
	if (client->fd != fd) {
		if (epoll_ctl(run->epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
			perror("epoll_ctl(EPOLL_CTL_ADD)");
			return;
		}
		client->fd = fd;
		client->out_watched = out;
	} else if (client->out_watched != out) {
		if (epoll_ctl(run->epoll_fd, EPOLL_CTL_MOD, fd, &event) != 0)
			perror("epoll_ctl(EPOLL_CTL_MOD)");
		client->out_watched = out;
	}
}

static void client_start(struct run *run, struct client *client)
{
	const struct options *o = &run->options;
	int rc;

	client->start_ns = now_ns();
	if (run->first_start_ns == 0)
		run->first_start_ns = client->start_ns;
	client->state = CLIENT_CONNECTING;
	run->pending++;
	rc = mosquitto_connect_async(client->mosq, o->host, o->port,
	                             o->keepalive);
	if (rc != MOSQ_ERR_SUCCESS && client->state == CLIENT_CONNECTING) {
		fprintf(stderr, "connect of client %s failed: %s\n",
		        client->spec->client_id, mosquitto_strerror(rc));
		run->counters.failed++;
		client_finish(client, CLIENT_FAILED);
		return;
	}
	watch_client(run, client);
}

/* Starts as many CONNECTs as the rate and concurrency limits allow. */
static void start_connects(struct run *run, size_t *next, int64_t begin_ns,
                           int64_t now)
{
	const struct options *o = &run->options;
	size_t allowed = run->specs.count;

	if (o->rate > 0) {
		double due = o->rate * (double)(now - begin_ns) / 1e9 + 1;

		if (due < (double)allowed)
			allowed = (size_t)due;
	}
	while (*next < allowed &&
	       (o->concurrency == 0 || run->pending < (size_t)o->concurrency))
		client_start(run, &run->clients[(*next)++]);
}

/* Waits up to POLL_TIMEOUT_MS for ready sockets and lets libmosquitto read
 * and write them. */
static int poll_once(struct run *run)
{
	struct epoll_event events[MAX_EVENTS];
	int ready, i;

	ready = epoll_wait(run->epoll_fd, events, MAX_EVENTS, POLL_TIMEOUT_MS);
	if (ready < 0 && errno != EINTR) {
		perror("epoll_wait");
		return -1;
	}
	for (i = 0; i < ready; i++) {
		struct client *client = events[i].data.ptr;
		uint32_t revents = events[i].events;

		if (!client_active(client) ||
		    mosquitto_socket(client->mosq) != client->fd)
			continue;
		if (revents & (EPOLLIN | EPOLLERR | EPOLLHUP))
			mosquitto_loop_read(client->mosq, 16);
		if ((revents & EPOLLOUT) && client_active(client))
			mosquitto_loop_write(client->mosq, 16);
		if (client->state == CLIENT_CONNECTING &&
		    mosquitto_socket(client->mosq) < 0) {
			run->counters.failed++;
			client_finish(client, CLIENT_FAILED);
		}
		watch_client(run, client);
	}
	return 0;
}

static void loop_misc_all(struct run *run)
{
	size_t i;

	for (i = 0; i < run->specs.count; i++) {
		struct client *client = &run->clients[i];

		if (!client_active(client))
			continue;
		mosquitto_loop_misc(client->mosq);
		watch_client(run, client);
	}
}

static void publish_one(struct run *run, struct client *client)
{
	const struct options *o = &run->options;
	int rc;

	rc = mosquitto_publish(client->mosq, NULL, client->pub_topic,
	                       (int)o->payload_size, run->payload, o->qos,
	                       false);
	if (rc == MOSQ_ERR_SUCCESS) {
		run->counters.published++;
		if (o->qos > 0)
			client->inflight++;
	}
	watch_client(run, client);
}

/* Publishes what the schedule allows. With --pub-rate max, each client
 * whose socket has nothing queued sends one message, and at QoS 1 only while
 * it has fewer than 10 unacknowledged. Otherwise it sends enough messages to
 * keep up with --pub-rate. */
static void publish_due(struct run *run, int64_t hold_start_ns, int64_t now,
                        size_t *cursor)
{
	const struct options *o = &run->options;
	size_t n = run->specs.count, tried = 0;
	double due = 0;

	if (o->pub_topic == NULL || (!o->pub_max && o->pub_rate <= 0))
		return;
	if (!o->pub_max) {
		due = o->pub_rate * (double)(now - hold_start_ns) / 1e9 -
		      (double)run->counters.published;
		if (due < 1)
			return;
	}
	for (tried = 0; tried < n; tried++) {
		struct client *client = &run->clients[*cursor];

		*cursor = (*cursor + 1) % n;
		if (client->state != CLIENT_CONNECTED || !client_active(client))
			continue;
		if (o->pub_max) {
			if (mosquitto_want_write(client->mosq) ||
			    client->inflight >= 10)
				continue;
		} else if (due < 1) {
			break;
		}
		publish_one(run, client);
		due -= 1;
	}
}

static bool past(int64_t now, int64_t deadline_ns)
{
	return now >= deadline_ns;
}

/* Connect phase: returns when every client has a CONNACK or failed, and
 * every SUBACK arrived (or SETTLE_NS passed), or at the deadline. */
static int run_connect_phase(struct run *run, int64_t deadline_ns)
{
	int64_t begin = now_ns(), last_misc = begin, now;
	int64_t settle_deadline = 0;
	size_t next = 0;

	for (;;) {
		now = now_ns();
		if (past(now, deadline_ns))
			return 1;
		start_connects(run, &next, begin, now);
		if (run->finished == run->specs.count) {
			if (run->suback_pending == 0)
				return 0;
			if (settle_deadline == 0)
				settle_deadline = now + SETTLE_NS;
			else if (past(now, settle_deadline))
				return 0;
		}
		if (poll_once(run) != 0)
			return -1;
		if (now - last_misc >= MISC_INTERVAL_NS) {
			loop_misc_all(run);
			last_misc = now;
		}
	}
}

/* Hold phase: stays connected for --hold seconds and publishes. */
static int run_hold_phase(struct run *run, int64_t deadline_ns,
                          double *held_seconds)
{
	int64_t begin = now_ns(), last_misc = begin, now;
	int64_t end = begin + (int64_t)(run->options.hold * 1e9);
	size_t cursor = 0;
	int result = 0;

	run->holding = true;
	for (;;) {
		now = now_ns();
		if (past(now, end))
			break;
		if (past(now, deadline_ns)) {
			result = 1;
			break;
		}
		publish_due(run, begin, now, &cursor);
		if (poll_once(run) != 0) {
			result = -1;
			break;
		}
		if (now - last_misc >= MISC_INTERVAL_NS) {
			loop_misc_all(run);
			last_misc = now;
		}
	}
	run->holding = false;
	*held_seconds = (double)(now - begin) / 1e9;
	return result;
}

/* Sends DISCONNECT from every connected client and gives the packets
 * DRAIN_NS to leave. */
static void disconnect_all(struct run *run)
{
	int64_t end;
	size_t i;

	for (i = 0; i < run->specs.count; i++) {
		struct client *client = &run->clients[i];

		if (client->state == CLIENT_CONNECTED &&
		    client_active(client)) {
			mosquitto_disconnect(client->mosq);
			watch_client(run, client);
		}
	}
	end = now_ns() + DRAIN_NS;
	while (!past(now_ns(), end)) {
		bool open = false;

		for (i = 0; i < run->specs.count && !open; i++)
			open = client_active(&run->clients[i]);
		if (!open || poll_once(run) != 0)
			break;
	}
}

static void fill_report(struct run *run, double held_seconds,
                        struct report *report)
{
	memset(report, 0, sizeof(*report));
	report->clients = run->specs.count;
	if (run->counters.connected > 0) {
		report->connect_seconds =
		        (double)(run->last_connack_ns - run->first_start_ns) /
		        1e9;
		if (report->connect_seconds > 0)
			report->connect_rate = (double)run->counters.connected /
			                       report->connect_seconds;
	}
	report->latency_median_ms =
	        quantile(run->latencies_ms, run->latency_count, 0.5);
	report->latency_p99_ms =
	        quantile(run->latencies_ms, run->latency_count, 0.99);
	report->latency_max_ms =
	        quantile(run->latencies_ms, run->latency_count, 1.0);
	report->hold_seconds = held_seconds;
	if (held_seconds > 0) {
		report->publish_rate =
		        (double)run->counters.published / held_seconds;
		report->delivery_rate =
		        (double)run->counters.received / held_seconds;
	}
}

static int load_clients(struct run *run)
{
	const struct options *o = &run->options;
	size_t i, n;
	int rc;

	if (o->clients_file != NULL)
		rc = client_list_read_file(o->clients_file, o->count,
		                           &run->specs);
	else
		rc = client_list_read_cert_dir(o->cert_dir, o->count,
		                               &run->specs);
	if (rc != 0)
		return -1;
	n = run->specs.count;
	if (o->count > n) {
		fprintf(stderr,
		        "--count %zu is more than the %zu clients "
		        "given\n",
		        o->count, n);
		return -1;
	}
	run->clients = calloc(n, sizeof(*run->clients));
	run->latencies_ms = calloc(n, sizeof(*run->latencies_ms));
	run->payload = calloc(1, o->payload_size + 1);
	if (run->clients == NULL || run->latencies_ms == NULL ||
	    run->payload == NULL) {
		fprintf(stderr, "out of memory for %zu clients\n", n);
		return -1;
	}
	memset(run->payload, 'x', o->payload_size);
	for (i = 0; i < n; i++) {
		struct client *client = &run->clients[i];

		client->run = run;
		client->spec = &run->specs.items[i];
		client->index = i;
		client->fd = -1;
		if (expand_topics(run, client) != 0 ||
		    client_setup(run, client) != 0)
			return -1;
	}
	return 0;
}

static void run_free(struct run *run)
{
	size_t i;

	for (i = 0; run->clients != NULL && i < run->specs.count; i++) {
		if (run->clients[i].mosq != NULL)
			mosquitto_destroy(run->clients[i].mosq);
		free(run->clients[i].pub_topic);
		free(run->clients[i].sub_topic);
	}
	free(run->clients);
	if (run->epoll_fd >= 0)
		close(run->epoll_fd);
	free(run->latencies_ms);
	free(run->payload);
	client_list_free(&run->specs);
}

int main(int argc, char **argv)
{
	struct run run;
	struct report report;
	int64_t deadline;
	double hold_seconds = 0;
	int rc, result = 1;

	memset(&run, 0, sizeof(run));
	rc = parse_options(argc, argv, &run.options);
	if (rc != 0)
		return rc > 0 ? 0 : 2;
	(void)signal(SIGPIPE, SIG_IGN);
	mosquitto_lib_init();
	run.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (run.epoll_fd < 0) {
		perror("epoll_create1");
		goto out;
	}
	if (load_clients(&run) != 0 || raise_fd_limit(run.specs.count) != 0)
		goto out;
	deadline = now_ns() + (int64_t)(run.options.timeout * 1e9);
	rc = run_connect_phase(&run, deadline);
	if (rc == 0 && run.counters.connected > 0)
		rc = run_hold_phase(&run, deadline, &hold_seconds);
	if (rc < 0)
		goto out;
	disconnect_all(&run);
	fill_report(&run, hold_seconds, &report);
	report.timed_out = rc > 0;
	if (run.options.json)
		report_print_json(&report, &run.counters);
	else
		report_print_text(&report, &run.counters);
	result = 0;
out:
	run_free(&run);
	mosquitto_lib_cleanup();
	return result;
}
