/*
 * Stand-ins for the few Mosquitto broker functions that the plugin's ACL,
 * session and state sources call, so that bench_plugin and
 * test_plugin_acl can link those sources without a broker. Logging is
 * dropped and every client has the same id, address and username.
 */
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

void mosquitto_log_printf(int level, const char *fmt, ...)
{
	(void)level;
	(void)fmt;
}

const char *mosquitto_client_id(const struct mosquitto *client)
{
	(void)client;
	return "bench";
}

const char *mosquitto_client_address(const struct mosquitto *client)
{
	(void)client;
	return "127.0.0.1";
}

const char *mosquitto_client_username(const struct mosquitto *client)
{
	(void)client;
	return "bench";
}

void *mosquitto_client_certificate(const struct mosquitto *client)
{
	(void)client;
	return NULL;
}

int mosquitto_set_username(struct mosquitto *client, const char *username)
{
	(void)client;
	(void)username;
	return MOSQ_ERR_SUCCESS;
}
