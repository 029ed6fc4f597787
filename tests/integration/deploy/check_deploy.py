#!/usr/bin/python3
"""Static checks of the files under deploy/.

Usage: check_deploy.py DEPLOY_DIR

Parses every systemd unit, example configuration, Containerfile and
Kubernetes manifest under DEPLOY_DIR and checks the security settings that
docs/deployment.md promises. Prints one line per failed check and exits 1
when any check failed, 2 when PyYAML is missing.

Runs with Debian's /usr/bin/python3 and python3-yaml; nothing else.
"""

import pathlib
import re
import sys

try:
    import yaml
except ImportError:
    print("check_deploy: error: PyYAML is missing: install the Debian "
          "package python3-yaml (tools/install-deps installs it)",
          file=sys.stderr)
    sys.exit(2)


class Checker:
    """Collects failures so that one run reports every broken setting."""

    def __init__(self):
        self.failures = []
        self.checks = 0

    def expect(self, condition, where, message):
        self.checks += 1
        if not condition:
            self.failures.append(f"{where}: {message}")
        return condition


# ---------------------------------------------------------------------------
# systemd units

UNIT_SECTION = re.compile(r"^\[([A-Za-z0-9 _-]+)\]$")
UNIT_ASSIGNMENT = re.compile(r"^([A-Za-z][A-Za-z0-9]*)=(.*)$")


def parse_unit(path, check):
    """Parse a unit file into {section: [(key, value), ...]}.

    Follows the syntax of systemd.syntax(7): sections, Key=Value lines,
    comments starting with '#' or ';', and lines continued with a trailing
    backslash. Any other line is reported as a failure.
    """
    sections = {}
    current = None
    pending = ""
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        match = UNIT_SECTION.match(line)
        if match:
            current = sections.setdefault(match.group(1), [])
            continue
        match = UNIT_ASSIGNMENT.match(line)
        where = f"{path}:{number}"
        if not check.expect(match is not None, where,
                            f"invalid line {line!r}: expected Key=Value"):
            continue
        if not check.expect(current is not None, where,
                            "assignment before the first [Section]"):
            continue
        current.append((match.group(1), match.group(2).strip()))
    check.expect(pending == "", str(path), "file ends inside a continued "
                 "line")
    return sections


def unit_values(sections, section, key):
    return [v for k, v in sections.get(section, []) if k == key]


# Settings every service unit must carry with exactly this value.
UNIT_HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "MemoryDenyWriteExecute": "yes",
    "LockPersonality": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "RestrictNamespaces": "yes",
}

# Per unit: the user it runs as, whether it restarts, and the credentials
# it must load with LoadCredential=.
UNIT_EXPECTATIONS = {
    "fleetauthd.service": ("fleetauth", True, ["kek", "pgpass"]),
    "fleetauthd-migrate.service": ("fleetauth", False, ["pgpass"]),
    "mosquitto-fleetauth.service": ("mosquitto", True, ["pgpass"]),
}

SECRET_WORDS = re.compile(r"(?i)(password|passwd|secret)\s*[=:]")


def check_unit(path, check):
    sections = parse_unit(path, check)
    where = str(path)
    check.expect("Service" in sections, where, "missing [Service] section")
    for key, expected in UNIT_HARDENING.items():
        values = unit_values(sections, "Service", key)
        check.expect(values != [], where, f"missing {key}={expected}")
        if values:
            # The last assignment wins, except for empty resets of lists.
            check.expect(values[-1] == expected, where,
                         f"{key} is {values[-1]!r}, expected {expected!r}")
    filters = unit_values(sections, "Service", "SystemCallFilter")
    check.expect("@system-service" in filters, where,
                 "missing SystemCallFilter=@system-service")
    user, restarts, credentials = UNIT_EXPECTATIONS[path.name]
    check.expect(unit_values(sections, "Service", "User") == [user], where,
                 f"expected exactly one User={user}")
    if restarts:
        check.expect(unit_values(sections, "Service", "Restart")
                     == ["on-failure"], where, "expected Restart=on-failure")
    loaded = [v.split(":", 1)[0]
              for v in unit_values(sections, "Service", "LoadCredential")]
    for name in credentials:
        check.expect(name in loaded, where,
                     f"missing LoadCredential={name}:...")
    for value in unit_values(sections, "Service", "Environment"):
        check.expect(not SECRET_WORDS.search(value), where,
                     f"Environment= carries a secret: {value!r}; load it "
                     "with LoadCredential= instead")


# ---------------------------------------------------------------------------
# Example configurations

def mosquitto_lines(text):
    """Yield (number, keyword, argument) for each directive."""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, argument = line.partition(" ")
        yield number, keyword, argument.strip()


def check_mosquitto_config(text, where, check):
    """Check a Mosquitto 2.0 configuration for the plugin's requirements."""
    globals_seen = {}
    listeners = []
    current = None
    for number, keyword, argument in mosquitto_lines(text):
        at = f"{where}:{number}"
        check.expect(keyword not in ("use_identity_as_username",
                                     "use_subject_as_username"), at,
                     f"{keyword} makes Mosquitto skip the plugin's "
                     "authentication; remove it")
        if keyword == "allow_anonymous":
            check.expect(argument == "false", at,
                         "allow_anonymous must be false")
        if keyword == "password_file" or keyword == "acl_file":
            check.expect(False, at, f"{keyword} bypasses the plugin")
        if keyword == "plugin_opt_db_conninfo":
            check.expect("password=" not in argument, at,
                         "plugin_opt_db_conninfo contains a password; use "
                         "passfile=")
        if keyword == "listener":
            current = {"line": number, "port": argument.split()[0]}
            listeners.append(current)
        elif current is not None:
            current[keyword] = argument
        else:
            globals_seen[keyword] = argument

    check.expect(globals_seen.get("per_listener_settings") == "false", where,
                 "per_listener_settings false must come before the first "
                 "listener")
    check.expect(globals_seen.get("allow_anonymous") == "false", where,
                 "allow_anonymous false must come before the first listener")
    check.expect("plugin" in globals_seen, where, "missing plugin line")
    check.expect("plugin_opt_db_conninfo" in globals_seen, where,
                 "missing plugin_opt_db_conninfo")

    check.expect(listeners != [], where, "no listener")
    mutual = [l for l in listeners
              if l.get("require_certificate") == "true"]
    check.expect(mutual != [], where,
                 "no TLS listener with require_certificate true")
    for listener in listeners:
        at = f"{where}:{listener['line']}"
        if "certfile" in listener:
            check.expect("keyfile" in listener, at,
                         "TLS listener without keyfile")
        if listener.get("require_certificate") == "true":
            check.expect("cafile" in listener or "capath" in listener, at,
                         "require_certificate true needs cafile")
            check.expect("certfile" in listener, at,
                         "require_certificate true needs certfile")


def check_fleetauthd_config(text, where, check):
    """Check a fleetauthd "name = value" configuration."""
    options = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        at = f"{where}:{number}"
        if not check.expect("=" in line, at,
                            f"expected name = value, got {line!r}"):
            continue
        name, _, value = line.partition("=")
        options[name.strip()] = value.strip()
    for name in ("listen_address", "listen_port", "database_url", "kek_id",
                 "issuer", "audience"):
        check.expect(name in options, where, f"missing option {name}")
    check.expect("password=" not in options.get("database_url", ""), where,
                 "database_url contains a password; use PGPASSFILE")
    check.expect(options.get("kek_file", "/").startswith("/"), where,
                 "kek_file must be an absolute path to the key file")
    cost = options.get("bcrypt_cost", "12")
    check.expect(cost.isdigit() and int(cost) >= 12, where,
                 f"bcrypt_cost {cost} is below 12")


# ---------------------------------------------------------------------------
# Containerfiles

FROM_LINE = re.compile(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?\s*$", re.I)


def containerfile_instructions(text):
    """Yield (number, instruction, argument) with continuations joined."""
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        instruction, _, argument = line.partition(" ")
        yield start, instruction.upper(), argument.strip()


def check_containerfile(path, check):
    where = str(path)
    stages = []
    users = []
    healthcheck = False
    for number, instruction, argument in containerfile_instructions(
            path.read_text()):
        at = f"{where}:{number}"
        if instruction == "FROM":
            match = FROM_LINE.match(f"FROM {argument}")
            if not check.expect(match is not None, at,
                                f"cannot parse FROM {argument}"):
                continue
            image, alias = match.group(1), match.group(2)
            name, _, tag = image.rpartition(":")
            pinned = image in {s for s in stages if s} or (
                name != "" and tag not in ("", "latest") and "/" not in tag)
            check.expect(pinned, at, f"FROM {image} is not pinned to a "
                         "named tag")
            stages.append(alias)
            users = []
        elif instruction == "USER":
            users.append(argument)
        elif instruction == "ADD":
            check.expect(not re.search(r"(?i)\b(https?|ftp)://", argument),
                         at, "ADD of a remote URL; download in a RUN step "
                         "with a checksum instead")
        elif instruction == "HEALTHCHECK":
            healthcheck = argument.upper() != "NONE"
    check.expect(len(stages) >= 2, where, "expected a multi-stage build")
    check.expect(users != [], where, "final stage has no USER")
    if users:
        user = users[-1].split(":")[0]
        check.expect(user not in ("root", "0"), where,
                     f"final USER is {users[-1]}, expected a non-root user")
        check.expect(user.isdigit(), where,
                     f"final USER {users[-1]} is not a numeric uid")
    check.expect(healthcheck, where, "missing HEALTHCHECK")


# ---------------------------------------------------------------------------
# Kubernetes manifests

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
SECRET_ENV = re.compile(r"(?i)(password|passwd|secret|token|credential)")


def pod_spec(doc):
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("spec", {})


def pod_labels(doc):
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("metadata", {}).get("labels", {})


def check_container(container, pod_security, where, check):
    name = container.get("name", "?")
    at = f"{where}: container {name}"
    security = container.get("securityContext") or {}
    check.expect(security.get("allowPrivilegeEscalation") is False, at,
                 "allowPrivilegeEscalation must be false")
    check.expect(security.get("readOnlyRootFilesystem") is True, at,
                 "readOnlyRootFilesystem must be true")
    check.expect(security.get("privileged") is not True, at,
                 "privileged must not be true")
    drop = (security.get("capabilities") or {}).get("drop") or []
    check.expect("ALL" in drop, at, "capabilities.drop must contain ALL")
    check.expect(not (security.get("capabilities") or {}).get("add"), at,
                 "capabilities.add must be empty")
    non_root = security.get("runAsNonRoot",
                            pod_security.get("runAsNonRoot"))
    check.expect(non_root is True, at, "runAsNonRoot must be true")
    user = security.get("runAsUser", pod_security.get("runAsUser"))
    check.expect(user != 0, at, "runAsUser must not be 0")

    seccomp = security.get("seccompProfile",
                           pod_security.get("seccompProfile")) or {}
    check.expect(seccomp.get("type") == "RuntimeDefault", at,
                 "seccompProfile.type must be RuntimeDefault")

    resources = container.get("resources") or {}
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            check.expect(resource in (resources.get(kind) or {}), at,
                         f"missing resources.{kind}.{resource}")
    image = container.get("image", "")
    check.expect(":" in image.rsplit("/", 1)[-1]
                 and not image.endswith(":latest"), at,
                 f"image {image!r} is not pinned to a named tag")

    for env in container.get("env") or []:
        env_name = env.get("name", "")
        source = env.get("valueFrom") or {}
        check.expect("secretKeyRef" not in source, at,
                     f"env {env_name} reads a Secret; mount it as a file")
        if "value" in env and SECRET_ENV.search(env_name):
            check.expect(str(env["value"]).startswith("/"), at,
                         f"env {env_name} holds a literal secret; mount it "
                         "as a file")
    for source in container.get("envFrom") or []:
        check.expect("secretRef" not in source, at,
                     "envFrom reads a Secret; mount it as files")


def probe_kind(container, probe):
    return set((container.get(probe) or {}).keys()) & {
        "httpGet", "tcpSocket", "exec", "grpc"}


def check_workload(doc, where, check):
    spec = pod_spec(doc)
    security = spec.get("securityContext") or {}
    check.expect(security.get("runAsNonRoot") is True, where,
                 "pod securityContext.runAsNonRoot must be true")
    check.expect((security.get("seccompProfile") or {}).get("type")
                 == "RuntimeDefault", where,
                 "pod securityContext.seccompProfile must be RuntimeDefault")
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        check.expect(spec.get(host) is not True, where,
                     f"{host} must not be true")
    check.expect(spec.get("automountServiceAccountToken") is False, where,
                 "automountServiceAccountToken must be false")
    containers = spec.get("containers") or []
    check.expect(containers != [], where, "no containers")
    for container in containers + (spec.get("initContainers") or []):
        check_container(container, security, where, check)
    for volume in spec.get("volumes") or []:
        check.expect("hostPath" not in volume, where,
                     f"volume {volume.get('name')} uses hostPath")
    return containers


def check_fleetauthd_workload(doc, where, check):
    check.expect(doc["spec"].get("replicas") == 2, where,
                 "fleetauthd must run 2 replicas")
    for container in pod_spec(doc).get("containers") or []:
        ready = (container.get("readinessProbe") or {}).get("httpGet") or {}
        live = (container.get("livenessProbe") or {}).get("httpGet") or {}
        at = f"{where}: container {container.get('name')}"
        check.expect(ready.get("path") == "/readyz", at,
                     "readinessProbe must GET /readyz")
        check.expect(live.get("path") == "/healthz", at,
                     "livenessProbe must GET /healthz")


def check_broker_workload(doc, where, check):
    for container in pod_spec(doc).get("containers") or []:
        at = f"{where}: container {container.get('name')}"
        check.expect(probe_kind(container, "readinessProbe")
                     == {"tcpSocket"}, at,
                     "readinessProbe must be a tcpSocket probe")
        check.expect(probe_kind(container, "livenessProbe")
                     == {"tcpSocket"}, at,
                     "livenessProbe must be a tcpSocket probe")


def selector_matches(selector, labels):
    """Evaluate a Kubernetes label selector against a label map."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key = expression.get("key")
        operator = expression.get("operator")
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def selects_only(selector, wanted, workloads):
    """True when a non-empty selector matches some of the wanted label sets
    and none of the other workloads' label sets."""
    if not selector:
        return False
    others = [l for sets in workloads.values() for l in sets
              if l not in wanted]
    return (any(selector_matches(selector, l) for l in wanted)
            and not any(selector_matches(selector, l) for l in others))


def rule_ports(rule):
    return {str(p.get("port")) for p in rule.get("ports") or []}


def check_network_policies(policies, workloads, check):
    """Check who may reach fleetauthd, PostgreSQL and the brokers.

    workloads maps a role ("fleetauthd", "broker", "other") to the pod
    label sets of that role's workloads.
    """
    where = "NetworkPolicy"
    deny = [p for p in policies
            if p["spec"].get("podSelector") == {}
            and set(p["spec"].get("policyTypes") or [])
            == {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")]
    check.expect(deny != [], where, "missing a default-deny policy "
                 "(podSelector {}, policyTypes Ingress and Egress, no rules)")

    fleetauthd_labels = workloads.get("fleetauthd", [])
    broker_labels = workloads.get("broker", [])
    check.expect(fleetauthd_labels != [], where, "no fleetauthd workload")
    check.expect(broker_labels != [], where, "no broker workload")

    # Ingress to fleetauthd: only broker pods and the ingress namespace.
    allowed_sources = 0
    for policy in policies:
        spec = policy["spec"]
        name = policy["metadata"]["name"]
        selects_server = any(selector_matches(spec.get("podSelector"), l)
                             for l in fleetauthd_labels
                             if l.get("app.kubernetes.io/component")
                             == "server")
        if not selects_server:
            continue
        for rule in spec.get("ingress") or []:
            peers = rule.get("from")
            check.expect(bool(peers), f"{where} {name}",
                         "an ingress rule without 'from' lets anyone "
                         "reach fleetauthd")
            for peer in peers or []:
                from_broker = ("podSelector" in peer
                               and "namespaceSelector" not in peer
                               and selects_only(peer["podSelector"],
                                                broker_labels, workloads))
                namespace = (peer.get("namespaceSelector") or {}).get(
                    "matchLabels") or {}
                from_ingress = ("podSelector" not in peer
                                and "ipBlock" not in peer
                                and "ingress" in namespace.get(
                                    "kubernetes.io/metadata.name", ""))
                check.expect(from_broker or from_ingress,
                             f"{where} {name}",
                             f"fleetauthd ingress peer {peer} is neither "
                             "the broker pods nor the ingress namespace")
                allowed_sources += from_broker or from_ingress
    check.expect(allowed_sources >= 2, where, "fleetauthd must accept "
                 "traffic from the brokers and the ingress namespace")

    # Egress to PostgreSQL (port 5432): fleetauthd and brokers only.
    database_roles = set()
    for policy in policies:
        spec = policy["spec"]
        name = policy["metadata"]["name"]
        for rule in spec.get("egress") or []:
            ports = rule_ports(rule)
            if "5432" not in ports and ports:
                continue
            for role, label_sets in workloads.items():
                if any(selector_matches(spec.get("podSelector"), l)
                       for l in label_sets):
                    check.expect(role in ("fleetauthd", "broker"),
                                 f"{where} {name}",
                                 f"{role} pods may reach PostgreSQL")
                    database_roles.add(role)
            check.expect(bool(ports), f"{where} {name}",
                         "an egress rule without ports allows everything")
    check.expect({"fleetauthd", "broker"} <= database_roles, where,
                 "fleetauthd and the brokers must reach PostgreSQL on 5432")

    # Ingress to the brokers: MQTT from anywhere.
    open_ports = set()
    for policy in policies:
        spec = policy["spec"]
        if not any(selector_matches(spec.get("podSelector"), l)
                   for l in broker_labels):
            continue
        for rule in spec.get("ingress") or []:
            if not rule.get("from"):
                open_ports |= rule_ports(rule)
    for port in ("1883", "8883"):
        check.expect(port in open_ports, where,
                     f"brokers must accept port {port} from anywhere")


def workload_role(doc):
    labels = pod_labels(doc)
    name = labels.get("app.kubernetes.io/name")
    if name == "fleetauthd":
        return "fleetauthd"
    if name == "mosquitto-fleetauth":
        return "broker"
    return "other"


def check_kubernetes(directory, check):
    policies = []
    workloads = {}
    namespaces = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text())
                    if d is not None]
        except yaml.YAMLError as error:
            check.expect(False, str(path), f"invalid YAML: {error}")
            continue
        for index, doc in enumerate(docs):
            where = f"{path} document {index + 1}"
            if not check.expect(isinstance(doc, dict) and "kind" in doc,
                                where, "not a Kubernetes object"):
                continue
            kind = doc["kind"]
            if kind == "Kustomization":
                for resource in doc.get("resources") or []:
                    check.expect((directory / resource).is_file(), where,
                                 f"resource {resource} not found")
                continue
            check.expect("apiVersion" in doc, where, "missing apiVersion")
            name = doc.get("metadata", {}).get("name", "?")
            where = f"{path} {kind}/{name}"
            check.expect(kind != "Secret" or not (doc.get("data")
                                                  or doc.get("stringData")),
                         where, "Secret with literal data in a manifest")
            if kind == "Namespace":
                namespaces.append(doc)
            elif kind == "NetworkPolicy":
                policies.append(doc)
            elif kind in WORKLOADS:
                check_workload(doc, where, check)
                role = workload_role(doc)
                workloads.setdefault(role, []).append(pod_labels(doc))
                if role == "fleetauthd" and kind == "Deployment":
                    check_fleetauthd_workload(doc, where, check)
                if role == "broker":
                    check_broker_workload(doc, where, check)
            elif kind == "ConfigMap":
                data = doc.get("data") or {}
                if "fleetauth.conf" in data:
                    check_mosquitto_config(data["fleetauth.conf"], where,
                                           check)
                if "fleetauthd.conf" in data:
                    check_fleetauthd_config(data["fleetauthd.conf"], where,
                                            check)
    check.expect(any(n["metadata"].get("labels", {}).get(
        "pod-security.kubernetes.io/enforce") == "restricted"
        for n in namespaces), str(directory),
        "no Namespace enforces the restricted Pod Security profile")
    check_network_policies(policies, workloads, check)


def main(argv):
    if len(argv) != 2:
        print("usage: check_deploy.py DEPLOY_DIR", file=sys.stderr)
        return 2
    deploy = pathlib.Path(argv[1])
    check = Checker()
    expected = [
        deploy / "systemd" / name for name in UNIT_EXPECTATIONS
    ] + [
        deploy / "config" / "fleetauthd.conf.example",
        deploy / "config" / "mosquitto-fleetauth.conf.example",
        deploy / "container" / "Containerfile.fleetauthd",
        deploy / "container" / "Containerfile.mosquitto",
        deploy / "kubernetes" / "kustomization.yaml",
    ]
    for path in expected:
        check.expect(path.is_file(), str(path), "file not found")

    for name in UNIT_EXPECTATIONS:
        path = deploy / "systemd" / name
        if path.is_file():
            check_unit(path, check)
    config = deploy / "config"
    if (config / "mosquitto-fleetauth.conf.example").is_file():
        path = config / "mosquitto-fleetauth.conf.example"
        check_mosquitto_config(path.read_text(), str(path), check)
    if (config / "fleetauthd.conf.example").is_file():
        path = config / "fleetauthd.conf.example"
        check_fleetauthd_config(path.read_text(), str(path), check)
    for path in sorted((deploy / "container").glob("Containerfile.*")):
        check_containerfile(path, check)
    check_kubernetes(deploy / "kubernetes", check)

    for failure in check.failures:
        print(f"FAIL: {failure}")
    print(f"check_deploy: {check.checks} checks, "
          f"{len(check.failures)} failed")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
