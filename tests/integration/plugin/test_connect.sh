#!/usr/bin/env bash
# Plugin: CONNECT with tokens (bad algorithms, keys, claims, client ids) and
# device certificates, and a client-id takeover attempt, over MQTT 3.1.1 and
# 5.
#
#   test_connect.sh ENV_FILE
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fa_plugin_setup "$@"
for_each_version test_tokens
for_each_version test_devices
for_each_version test_takeover
fa_plugin_finish
