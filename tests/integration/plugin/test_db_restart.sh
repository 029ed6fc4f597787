#!/usr/bin/env bash
# Plugin: a PostgreSQL restart keeps clients working, and changes arrive again
# after it.
#
#   test_db_restart.sh ENV_FILE
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fa_plugin_setup "$@"
VERSION=5
test_db_restart
fa_plugin_finish
