/*
 * Test client for the plugin tests: connects once (no reconnect), optionally
 * subscribes, and prints one line per event with the wall-clock time in
 * milliseconds, so a script can measure how fast the broker acts:
 *
 *   connected MS | refused MS RC | subscribed MS QOS | message MS TOPIC PAYLOAD
 *   disconnected MS RC
 *
 * usage: mqtt_watch HOST PORT CLIENT_ID USERNAME PASSWORD TOPIC|- 3|5
 *                   [CAFILE CERTFILE KEYFILE]
 * USERNAME or PASSWORD "-" means none. Exits after the disconnect.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>

static const char *watch_topic;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
	(void)obj;
	if (rc != 0) {
		printf("refused %lld %d\n", now_ms(), rc);
		mosquitto_disconnect(mosq);
		return;
	}
	printf("connected %lld\n", now_ms());
	if (strcmp(watch_topic, "-") != 0)
		mosquitto_subscribe(mosq, NULL, watch_topic, 1);
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int count,
                         const int *granted)
{
	(void)mosq;
	(void)obj;
	(void)mid;
	printf("subscribed %lld %d\n", now_ms(), count > 0 ? granted[0] : -1);
}

static void on_message(struct mosquitto *mosq, void *obj,
                       const struct mosquitto_message *msg)
{
	(void)mosq;
	(void)obj;
	printf("message %lld %s %.*s\n", now_ms(), msg->topic, msg->payloadlen,
	       (const char *)msg->payload);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
	(void)obj;
	printf("disconnected %lld %d\n", now_ms(), rc);
	mosquitto_disconnect(mosq);
}

int main(int argc, char **argv)
{
	struct mosquitto *mosq;
	int version;
	int rc;

	if (argc != 8 && argc != 11) {
		fprintf(stderr, "usage: mqtt_watch HOST PORT CLIENT_ID "
		                "USERNAME PASSWORD TOPIC|- 3|5 "
		                "[CAFILE CERTFILE KEYFILE]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	watch_topic = argv[6];
	version = strcmp(argv[7], "5") == 0 ? MQTT_PROTOCOL_V5
	                                    : MQTT_PROTOCOL_V311;
	mosquitto_lib_init();
	mosq = mosquitto_new(argv[3], true, NULL);
	if (mosq == NULL) {
		fprintf(stderr, "mqtt_watch: mosquitto_new failed\n");
		return 1;
	}
	mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, version);
	if (strcmp(argv[4], "-") != 0)
		mosquitto_username_pw_set(
		        mosq, argv[4], strcmp(argv[5], "-") ? argv[5] : NULL);
	if (argc == 11 &&
	    mosquitto_tls_set(mosq, argv[8], NULL, argv[9], argv[10], NULL) !=
	            MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "mqtt_watch: TLS setup failed\n");
		return 1;
	}
	mosquitto_connect_callback_set(mosq, on_connect);
	mosquitto_subscribe_callback_set(mosq, on_subscribe);
	mosquitto_message_callback_set(mosq, on_message);
	mosquitto_disconnect_callback_set(mosq, on_disconnect);
	rc = mosquitto_connect(mosq, argv[1], atoi(argv[2]), 30);
	if (rc != MOSQ_ERR_SUCCESS) {
		printf("disconnected %lld %d\n", now_ms(), rc);
		return 1;
	}
	do {
		rc = mosquitto_loop(mosq, 100, 1);
	} while (rc == MOSQ_ERR_SUCCESS);
	if (rc != MOSQ_ERR_NO_CONN)
		printf("disconnected %lld %d\n", now_ms(), rc);
	mosquitto_destroy(mosq);
	mosquitto_lib_cleanup();
	return 0;
}
