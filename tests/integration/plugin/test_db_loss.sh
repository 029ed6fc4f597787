#!/usr/bin/env bash
# Plugin: without a database the broker keeps its clients and decides from
# the last state, denies new CONNECTs after stale_after, and reloads a full
# snapshot after reconnecting.
#
#   test_db_loss.sh ENV_FILE
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fa_plugin_setup "$@"
VERSION=5
test_db_loss
fa_plugin_finish
