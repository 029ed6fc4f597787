#!/usr/bin/env bash
# The files under deploy/ parse and keep their security settings:
#   1. check_deploy.py passes on deploy/ (systemd units, example
#      configurations, Containerfiles, Kubernetes manifests);
#   2. it fails, naming the setting, on copies of deploy/ with one setting
#      removed or weakened each, so that every check can fail;
#   3. systemd-analyze verify accepts the units without a warning, when
#      systemd-analyze exists;
#   4. kubectl kustomize builds deploy/kubernetes offline, when kubectl
#      exists.
# Needs no stack: the env file argument is ignored.
set -euo pipefail

SRC_DIR=$(cd "$(dirname "$0")/../../.." && pwd)
CHECKER=$SRC_DIR/tests/integration/deploy/check_deploy.py
PYTHON=/usr/bin/python3
TMP=

fail()
{
	printf 'FAIL: %s: %s\n' "$(basename "$0")" "$*" >&2
	exit 1
}

say()
{
	printf '%s: %s\n' "$(basename "$0")" "$*"
}

cleanup()
{
	if [[ -n $TMP && -d $TMP ]]; then
		rm -rf -- "$TMP"
	fi
}

require_python_yaml()
{
	[[ -x $PYTHON ]] ||
		fail "$PYTHON not found: install the Debian package python3"
	"$PYTHON" -c 'import yaml' 2>/dev/null ||
		fail "PyYAML is missing for $PYTHON: install the Debian" \
			"package python3-yaml (tools/install-deps installs it)"
}

# Replaces the first occurrence of old (may span lines) with new in file.
# Fails when old does not occur, so that a mutation never misses silently.
replace_first()
{
	local file=$1 old=$2 new=$3
	"$PYTHON" - "$file" "$old" "$new" <<'EOF'
import sys
path, old, new = sys.argv[1:4]
text = open(path).read()
if old not in text:
    sys.exit(f"text {old!r} not found in {path}")
open(path, "w").write(text.replace(old, new, 1))
EOF
}

# Runs the checker on a copy of deploy/ with one change and expects it to
# fail with a message containing expected.
expect_mutation_fails()
{
	local file=$1 old=$2 new=$3 expected=$4
	local copy=$TMP/mutation output rc=0
	rm -rf "$copy"
	cp -r "$SRC_DIR/deploy" "$copy"
	replace_first "$copy/$file" "$old" "$new" ||
		fail "mutation of $file did not apply; update this test"
	output=$("$PYTHON" "$CHECKER" "$copy" 2>&1) || rc=$?
	((rc == 1)) || fail "checker exited $rc, expected 1, after changing" \
		"'$old' in $file: $output"
	[[ $output == *"$expected"* ]] ||
		fail "checker did not report '$expected' after changing" \
			"'$old' in $file; it printed: $output"
	MUTATIONS=$((MUTATIONS + 1))
}

check_current_files()
{
	local output
	output=$("$PYTHON" "$CHECKER" "$SRC_DIR/deploy" 2>&1) ||
		fail "deploy/ fails the static checks: $output"
	say "${output##*$'\n'}"
}

check_mutations()
{
	MUTATIONS=0
	# systemd units
	expect_mutation_fails systemd/fleetauthd.service \
		$'NoNewPrivileges=yes\n' '' 'missing NoNewPrivileges=yes'
	expect_mutation_fails systemd/fleetauthd.service \
		'ProtectSystem=strict' 'ProtectSystem=full' \
		"ProtectSystem is 'full'"
	expect_mutation_fails systemd/fleetauthd.service \
		$'MemoryDenyWriteExecute=yes\n' '' 'missing MemoryDenyWriteExecute'
	expect_mutation_fails systemd/fleetauthd.service \
		'LoadCredential=kek:' 'LoadCredential kek:' \
		"invalid line 'LoadCredential kek:"
	expect_mutation_fails systemd/fleetauthd.service \
		$'LoadCredential=kek:/etc/fleetauth/kek.hex\n' '' \
		'missing LoadCredential=kek'
	expect_mutation_fails systemd/fleetauthd.service \
		'Environment=PGPASSFILE=%d/pgpass' \
		'Environment=PGPASSWORD=hunter2' 'Environment= carries a secret'
	expect_mutation_fails systemd/mosquitto-fleetauth.service \
		$'CapabilityBoundingSet=\n' \
		$'CapabilityBoundingSet=CAP_NET_ADMIN\n' \
		"CapabilityBoundingSet is 'CAP_NET_ADMIN'"
	expect_mutation_fails systemd/mosquitto-fleetauth.service \
		'SystemCallFilter=@system-service' '' \
		'missing SystemCallFilter=@system-service'
	expect_mutation_fails systemd/fleetauthd-migrate.service \
		'User=fleetauth' 'User=root' 'expected exactly one User=fleetauth'
	# Mosquitto and fleetauthd configurations
	expect_mutation_fails config/mosquitto-fleetauth.conf.example \
		'allow_anonymous false' 'allow_anonymous true' \
		'allow_anonymous must be false'
	expect_mutation_fails config/mosquitto-fleetauth.conf.example \
		'per_listener_settings false' 'per_listener_settings true' \
		'per_listener_settings false must come before'
	expect_mutation_fails config/mosquitto-fleetauth.conf.example \
		'require_certificate true' \
		$'require_certificate true\nuse_identity_as_username true' \
		'use_identity_as_username makes Mosquitto skip'
	expect_mutation_fails config/mosquitto-fleetauth.conf.example \
		'require_certificate true' 'require_certificate false' \
		'no TLS listener with require_certificate true'
	expect_mutation_fails config/mosquitto-fleetauth.conf.example \
		'user=fleetauth_broker' 'user=fleetauth_broker password=x' \
		'plugin_opt_db_conninfo contains a password'
	expect_mutation_fails kubernetes/mosquitto.yaml \
		'allow_anonymous false' 'allow_anonymous true' \
		'allow_anonymous must be false'
	expect_mutation_fails config/fleetauthd.conf.example \
		'bcrypt_cost = 12' 'bcrypt_cost = 10' 'bcrypt_cost 10 is below 12'
	# Containerfiles
	expect_mutation_fails container/Containerfile.fleetauthd \
		'USER 10001:10001' 'USER root' 'final USER is root'
	expect_mutation_fails container/Containerfile.mosquitto \
		$'USER 10001:10001\n' '' 'final stage has no USER'
	expect_mutation_fails container/Containerfile.mosquitto \
		'FROM debian:bookworm-slim' 'FROM debian' \
		'FROM debian is not pinned'
	expect_mutation_fails container/Containerfile.fleetauthd \
		'FROM debian:bookworm-slim' 'FROM debian:latest' \
		'FROM debian:latest is not pinned'
	expect_mutation_fails container/Containerfile.fleetauthd \
		'COPY --from=build /out/ /' \
		$'COPY --from=build /out/ /\nADD https://example.com/x.tar /x' \
		'ADD of a remote URL'
	# Kubernetes manifests
	expect_mutation_fails kubernetes/fleetauthd.yaml \
		$'            readOnlyRootFilesystem: true\n' '' \
		'readOnlyRootFilesystem must be true'
	expect_mutation_fails kubernetes/fleetauthd.yaml \
		'allowPrivilegeEscalation: false' 'allowPrivilegeEscalation: true' \
		'allowPrivilegeEscalation must be false'
	expect_mutation_fails kubernetes/mosquitto.yaml \
		'drop: ["ALL"]' 'drop: ["NET_RAW"]' \
		'capabilities.drop must contain ALL'
	expect_mutation_fails kubernetes/mosquitto.yaml \
		$'        runAsNonRoot: true\n' '' \
		'pod securityContext.runAsNonRoot must be true'
	expect_mutation_fails kubernetes/fleetauthd-migrate-job.yaml \
		$'        seccompProfile:\n          type: RuntimeDefault\n' '' \
		'pod securityContext.seccompProfile must be RuntimeDefault'
	expect_mutation_fails kubernetes/fleetauthd.yaml \
		$'              memory: 256Mi\n' '' \
		'missing resources.limits.memory'
	expect_mutation_fails kubernetes/fleetauthd.yaml \
		'path: /readyz' 'path: /healthz' 'readinessProbe must GET /readyz'
	expect_mutation_fails kubernetes/fleetauthd.yaml \
		'replicas: 2' 'replicas: 1' 'fleetauthd must run 2 replicas'
	expect_mutation_fails kubernetes/mosquitto.yaml \
		$'            tcpSocket:\n              port: mqtt\n            periodSeconds: 5' \
		$'            exec:\n              command: ["true"]\n            periodSeconds: 5' \
		'readinessProbe must be a tcpSocket probe'
	expect_mutation_fails kubernetes/fleetauthd.yaml \
		$'            - name: PGPASSFILE\n              value: /run/fleetauth/secrets/pgpass' \
		$'            - name: PGPASSWORD\n              value: hunter2' \
		'env PGPASSWORD holds a literal secret'
	expect_mutation_fails kubernetes/fleetauthd.yaml \
		$'            - name: PGPASSFILE\n              value: /run/fleetauth/secrets/pgpass' \
		$'            - name: PGPASSWORD\n              valueFrom:\n                secretKeyRef: {name: db, key: password}' \
		'env PGPASSWORD reads a Secret'
	expect_mutation_fails kubernetes/fleetauthd.yaml \
		'image: registry.example.com/fleetauth/fleetauthd:0.1.0' \
		'image: registry.example.com/fleetauth/fleetauthd' \
		'is not pinned to a named tag'
	expect_mutation_fails kubernetes/namespace.yaml \
		'enforce: restricted' 'enforce: baseline' \
		'no Namespace enforces the restricted Pod Security profile'
	expect_mutation_fails kubernetes/networkpolicies.yaml \
		$'    - Ingress\n    - Egress\n---' $'    - Ingress\n---' \
		'missing a default-deny policy'
	expect_mutation_fails kubernetes/networkpolicies.yaml \
		$'        - namespaceSelector:\n            matchLabels:\n              kubernetes.io/metadata.name: ingress-nginx' \
		$'        - namespaceSelector: {}' \
		'is neither the broker pods nor the ingress namespace'
	expect_mutation_fails kubernetes/networkpolicies.yaml \
		$'    - from:\n        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: mosquitto-fleetauth' \
		$'    - from:\n        - podSelector: {}\n        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: mosquitto-fleetauth' \
		'is neither the broker pods nor the ingress namespace'
	expect_mutation_fails kubernetes/networkpolicies.yaml \
		$'          - fleetauthd\n          - mosquitto-fleetauth' \
		$'          - fleetauthd' \
		'fleetauthd and the brokers must reach PostgreSQL'
	expect_mutation_fails kubernetes/networkpolicies.yaml \
		$'        - protocol: TCP\n          port: 8883\n' '' \
		'brokers must accept port 8883 from anywhere'
	say "checker failed as expected on $MUTATIONS weakened copies"
}

# systemd-analyze verify checks that each ExecStart= binary exists, so the
# fleetauthd path is pointed at a stub; every other line is verified as
# written. Any output (an unknown key, a bad value) fails the test.
check_systemd_analyze()
{
	if ! command -v systemd-analyze >/dev/null 2>&1; then
		say "systemd-analyze not found: only the section and key" \
			"syntax check of check_deploy.py ran on the units"
		return 0
	fi
	local dir=$TMP/units unit output
	mkdir -p "$dir"
	printf '#!/bin/sh\nexit 0\n' >"$dir/fleetauthd"
	chmod 0755 "$dir/fleetauthd"
	for unit in "$SRC_DIR"/deploy/systemd/*.service; do
		sed "s|/usr/sbin/fleetauthd|$dir/fleetauthd|g" "$unit" \
			>"$dir/$(basename "$unit")"
	done
	if [[ ! -x /usr/sbin/mosquitto ]]; then
		say "/usr/sbin/mosquitto not found: verifying" \
			"mosquitto-fleetauth.service against a stub"
		printf '#!/bin/sh\nexit 0\n' >"$dir/mosquitto"
		chmod 0755 "$dir/mosquitto"
		sed -i "s|/usr/sbin/mosquitto|$dir/mosquitto|g" \
			"$dir/mosquitto-fleetauth.service"
	fi
	output=$(systemd-analyze verify --man=no "$dir"/*.service 2>&1) ||
		fail "systemd-analyze verify failed: $output"
	[[ -z $output ]] ||
		fail "systemd-analyze verify printed warnings: $output"
	say "systemd-analyze verify accepted" \
		"$(cd "$dir" && echo *.service)"
}

# kubectl kustomize renders the manifests locally and contacts no cluster.
check_kustomize()
{
	if ! command -v kubectl >/dev/null 2>&1; then
		say "kubectl not found: kustomization.yaml was checked only by" \
			"check_deploy.py"
		return 0
	fi
	local output count
	output=$(kubectl kustomize "$SRC_DIR/deploy/kubernetes" 2>&1) ||
		fail "kubectl kustomize failed: $output"
	count=$(grep -c '^kind: ' <<<"$output" || true)
	((count >= 10)) ||
		fail "kubectl kustomize rendered $count objects, expected 10 or more"
	say "kubectl kustomize rendered $count objects"
}

main()
{
	trap cleanup EXIT
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/fa-deploy.XXXXXX")
	require_python_yaml
	check_current_files
	check_mutations
	check_systemd_analyze
	check_kustomize
}

main "$@"
