#!/usr/bin/env bash
# Plugin: revocations disconnect within 1 s of the commit, expired tokens are
# disconnected, and unassignment stops deliveries.
#
#   test_revocation.sh ENV_FILE
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fa_plugin_setup "$@"
for_each_version test_revocation
for_each_version test_expiry
for_each_version test_unassignment
VERSION=5
test_device_revocation
fa_plugin_finish
