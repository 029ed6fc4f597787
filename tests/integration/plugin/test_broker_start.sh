#!/usr/bin/env bash
# Plugin: broker start without a database, start_fail_closed, invalid options
# and the failed-CONNECT throttle.
#
#   test_broker_start.sh ENV_FILE
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fa_plugin_setup "$@"
VERSION=5
test_throttle
test_start_failures
fa_plugin_finish
