/*
 * Shared types of fleetauth-loadgen: the client list read from a file or a
 * certificate directory, the per-client connection state and the counters
 * that the report prints.
 */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mosquitto;

/* One MQTT identity. Strings are owned by the client_list. */
struct client_spec {
	char *client_id;
	char *username;
	char *password; /* NULL for certificate clients */
	char *var;      /* optional fourth field of the clients file, or "" */
	char *certfile; /* NULL for token clients */
	char *keyfile;
};

struct client_list {
	struct client_spec *items;
	size_t count;
};

/*
 * Reads a clients file: one client per line, "client_id username password"
 * with an optional fourth field that topic templates insert as %v. Blank
 * lines and lines starting with '#' are skipped. Returns 0, or -1 after
 * printing the file name and line of the error to stderr. On success the
 * caller owns list and frees it with client_list_free.
 */
int client_list_read_file(const char *path, size_t limit,
                          struct client_list *list);

/*
 * Reads a directory of NAME.pem and NAME.key pairs, sorted by NAME. Each
 * pair becomes a certificate client whose client id and username are NAME.
 * Returns 0 or -1 after printing the error; the caller frees list.
 */
int client_list_read_cert_dir(const char *dir, size_t limit,
                              struct client_list *list);

void client_list_free(struct client_list *list);

/*
 * Expands a topic template into out (size bytes): %c is the client id, %u
 * the username, %i the client's 0-based index, %v the fourth field of its
 * line, %% a percent sign. Returns 0, or -1 when out is too small or the
 * template has another % sequence.
 */
int topic_expand(const char *template, const struct client_spec *spec,
                 size_t index, char *out, size_t size);

enum client_state {
	CLIENT_IDLE = 0,
	CLIENT_CONNECTING, /* CONNECT sent, no CONNACK yet */
	CLIENT_CONNECTED,
	CLIENT_REFUSED, /* CONNACK with a non-zero reason code */
	CLIENT_FAILED,  /* socket error or closed before CONNACK */
	CLIENT_DROPPED  /* connection closed by the broker after CONNACK */
};

struct run;

struct client {
	struct run *run;
	struct mosquitto *mosq;
	int fd;           /* socket registered with epoll, or -1 */
	bool out_watched; /* registered for EPOLLOUT */
	const struct client_spec *spec;
	size_t index;
	enum client_state state;
	int64_t start_ns;   /* when the CONNECT was started */
	int64_t connack_ns; /* when the CONNACK arrived */
	int connack_code;
	int suback_pending;
	int inflight;    /* QoS 1 publishes without PUBACK */
	char *pub_topic; /* expanded templates, NULL when unused */
	char *sub_topic;
};

struct counters {
	uint64_t connected;
	uint64_t refused;
	uint64_t failed;
	uint64_t dropped;
	uint64_t sub_granted;
	uint64_t sub_denied;
	uint64_t published;
	uint64_t pub_acked;
	uint64_t pub_denied; /* PUBACK reason code >= 0x80 (MQTT 5, QoS 1) */
	uint64_t received;   /* messages delivered during the hold phase */
	uint64_t received_total;
	int last_refusal_code;
};

/* Result numbers for the report; times in seconds unless named _ms. */
struct report {
	size_t clients;
	double connect_seconds; /* first CONNECT started to last CONNACK */
	double connect_rate;    /* successful CONNECTs per second */
	double latency_median_ms;
	double latency_p99_ms;
	double latency_max_ms;
	double hold_seconds;
	double publish_rate;
	double delivery_rate;
	int timed_out;
};

/*
 * Sorts the values (milliseconds) in place and returns the q-quantile,
 * 0 <= q <= 1, with the nearest-rank method; 0 for an empty array.
 */
double quantile(double *values, size_t count, double q);

void report_print_text(const struct report *report,
                       const struct counters *counters);
void report_print_json(const struct report *report,
                       const struct counters *counters);

#endif
