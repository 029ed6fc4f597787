#!/usr/bin/env bash
# docs/openapi.yaml against the routes that fleetauthd registers and against
# the running service:
#   1. the file is YAML with "openapi: 3.1.x";
#   2. its (method, path) pairs equal the output of "fleetauthd routes",
#      and each operation's x-scope and "security: []" match the scope and
#      public flag that "fleetauthd routes --long" prints;
#   3. every operation has a 2xx response and a security requirement (its
#      own or the top-level one), and every $ref resolves;
#   4. each public GET path without parameters returns a documented status;
#   5. an anonymous request to each operation gets a documented status,
#      and 401 exactly where the operation needs a credential.
# OPENAPI_SPEC overrides the spec file, for checking a modified copy.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"

spec=${OPENAPI_SPEC:-$FLEETAUTH_SOURCE_DIR/docs/openapi.yaml}
[[ -r $spec ]] || fa_fail "OpenAPI file $spec not found or not readable"
[[ -x $FLEETAUTHD ]] || fa_fail "fleetauthd binary $FLEETAUTHD not found"

"$FLEETAUTHD" routes >"$FA_TMP/routes.txt" 2>"$FA_TMP/routes.err" ||
	fa_fail "fleetauthd routes failed: $(cat "$FA_TMP/routes.err")"
[[ -s $FA_TMP/routes.txt ]] || fa_fail "fleetauthd routes printed no route"
"$FLEETAUTHD" routes --long >"$FA_TMP/routes-long.txt" \
	2>"$FA_TMP/routes.err" ||
	fa_fail "fleetauthd routes --long failed: $(cat "$FA_TMP/routes.err")"

# The static checks print one "METHOD PATH CODES PUBLIC" line per operation
# to operations.txt, for the live checks below. CODES is a comma-separated
# list of documented statuses, and PUBLIC is 1 for "security: []".
/usr/bin/python3 - "$spec" "$FA_TMP/routes.txt" "$FA_TMP/routes-long.txt" \
	>"$FA_TMP/operations.txt" 2>"$FA_TMP/static.err" <<'EOF' ||
import re
import sys

import yaml

METHODS = ("get", "put", "post", "delete", "patch", "head", "options",
           "trace")
errors = []


def normalise(path):
    """Replaces every {name} segment by {} so parameter names may differ."""
    return re.sub(r"\{[^/}]*\}", "{}", path)


def resolve(document, ref):
    """Returns the object that a local JSON pointer names, or None."""
    if not ref.startswith("#/"):
        return None
    node = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def check_refs(document, node, where):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and resolve(document, ref) is None:
            errors.append(f"unresolved $ref {ref} at {where}")
        for key, value in node.items():
            check_refs(document, value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            check_refs(document, value, f"{where}/{index}")


spec_file, routes_file, long_file = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    with open(spec_file, encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
except yaml.YAMLError as error:
    sys.exit(f"{spec_file} is not valid YAML: {error}")
if not isinstance(spec, dict):
    sys.exit(f"{spec_file} does not contain a YAML mapping")

version = str(spec.get("openapi", ""))
if not re.fullmatch(r"3\.1\.\d+", version):
    errors.append(f"openapi is {version!r}, expected 3.1.x")

paths = spec.get("paths")
if not isinstance(paths, dict) or not paths:
    sys.exit(f"{spec_file} has no paths")
schemes = spec.get("components", {}).get("securitySchemes", {})
top_security = spec.get("security")

spec_pairs = {}
spec_access = {}
for path, item in paths.items():
    for method in METHODS:
        operation = item.get(method)
        if operation is None:
            continue
        name = f"{method.upper()} {path}"
        spec_pairs[(method.upper(), normalise(path))] = name
        responses = operation.get("responses", {})
        codes = sorted(str(code) for code in responses)
        if not any(re.fullmatch(r"2\d\d", code) for code in codes):
            errors.append(f"{name}: no 2xx response")
        security = operation.get("security", top_security)
        if security is None:
            errors.append(f"{name}: no security requirement")
            continue
        for requirement in security:
            for scheme in requirement:
                if scheme not in schemes:
                    errors.append(f"{name}: unknown security scheme "
                                  f"{scheme}")
        if security and "x-scope" not in operation:
            errors.append(f"{name}: needs a credential but has no x-scope")
        public = 1 if security == [] else 0
        scope = operation.get("x-scope") or "-"
        spec_access[(method.upper(), normalise(path))] = (scope, public)
        print(f"{method.upper()} {path} {','.join(codes)} {public}")

route_pairs = {}
with open(routes_file, encoding="utf-8") as handle:
    for line in handle:
        fields = line.split()
        if len(fields) != 2:
            errors.append(f"fleetauthd routes printed a malformed line: "
                          f"{line.rstrip()!r}")
            continue
        route_pairs[(fields[0], normalise(fields[1]))] = line.strip()

for pair in sorted(set(route_pairs) - set(spec_pairs)):
    errors.append(f"route missing from the spec: {route_pairs[pair]}")
for pair in sorted(set(spec_pairs) - set(route_pairs)):
    errors.append(f"spec operation that fleetauthd does not route: "
                  f"{spec_pairs[pair]}")

# Scope and public flag, from "METHOD PATTERN SCOPE public|credential".
with open(long_file, encoding="utf-8") as handle:
    for line in handle:
        fields = line.split()
        if len(fields) != 4 or fields[3] not in ("public", "credential"):
            errors.append(f"fleetauthd routes --long printed a malformed "
                          f"line: {line.rstrip()!r}")
            continue
        pair = (fields[0], normalise(fields[1]))
        if pair not in spec_access:
            continue
        name = f"{fields[0]} {fields[1]}"
        scope, public = spec_access[pair]
        code_public = 1 if fields[3] == "public" else 0
        if public != code_public:
            errors.append(f"{name}: the route is {fields[3]}, but the spec "
                          f"has security {'[]' if public else 'bearer'}")
        if scope != fields[2]:
            errors.append(f"{name}: the route needs scope {fields[2]}, "
                          f"but x-scope is {scope}")

check_refs(spec, spec, "#")

if errors:
    sys.exit("\n".join(errors))
EOF
	fa_fail "static checks of $spec failed:"$'\n'"$(cat "$FA_TMP/static.err")"

count=$(wc -l <"$FA_TMP/operations.txt")
routes=$(wc -l <"$FA_TMP/routes.txt")
fa_expect_eq "$count" "$routes" "operations in the spec and routes"

# Sends one anonymous request and sets FA_STATUS.
anonymous_request()
{
	local method=$1 path=$2
	FA_STATUS=$(curl -s -o "$FA_TMP/live-body" -w '%{http_code}' \
		--max-time "$FA_CLIENT_TIMEOUT" -X "$method" \
		"$FLEETAUTH_URL$path") || FA_STATUS=000
}

# Live checks. {name} segments are filled with a valid id that names no
# object, and no request carries a body, so nothing is created or changed.
public_gets=0
while read -r method path codes public; do
	concrete=$(sed -E 's/\{[^/}]*\}/openapi-probe/g' <<<"$path")
	anonymous_request "$method" "$concrete"
	[[ ,$codes, == *,$FA_STATUS,* ]] ||
		fa_fail "$method $concrete returned $FA_STATUS, which the" \
			"spec does not document (documented: $codes):" \
			"$(cat "$FA_TMP/live-body")"
	if ((public == 0)); then
		fa_expect_eq "$FA_STATUS" 401 \
			"anonymous $method $concrete (needs a credential)"
	else
		fa_expect_ne "$FA_STATUS" 401 \
			"anonymous $method $concrete (public in the spec)"
		if [[ $method == GET && $path != *"{"* ]]; then
			public_gets=$((public_gets + 1))
		fi
	fi
done <"$FA_TMP/operations.txt"
((public_gets > 0)) || fa_fail "the spec has no public GET path to probe"
fa_log "checked $count operations, $public_gets public GET paths"
