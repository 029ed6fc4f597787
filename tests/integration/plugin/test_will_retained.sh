#!/usr/bin/env bash
# Plugin: wills and retained messages go through the topic rules, over MQTT
# 3.1.1 and 5.
#
#   test_will_retained.sh ENV_FILE
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fa_plugin_setup "$@"
for_each_version test_will_and_retained
fa_plugin_finish
