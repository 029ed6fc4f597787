#!/usr/bin/env bash
# Plugin: every row of the topic table, wildcards, $share and $SYS per role
# over MQTT 5.
#
#   test_topics_mqtt5.sh ENV_FILE
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fa_plugin_setup "$@"
VERSION=5
test_topic_table
fa_plugin_finish
