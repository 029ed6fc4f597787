#!/usr/bin/env bash
# Broker server certificate replacement: Mosquitto 2.0.11 reloads the
# certfile and keyfile of its listeners on SIGHUP, new TLS handshakes present
# the new certificate, and a client connected before the reload stays
# connected and keeps receiving messages. The cafile, in contrast, is read
# only at start: a client certificate from a CA added to the cafile is still
# refused after SIGHUP, which is why a fleet CA rotation needs a broker
# restart. Runs a private Mosquitto (no plugin, anonymous clients) on a free
# loopback port, so the stack's brokers are untouched.
. "$(dirname "$0")/../lib.sh"
fa_load_env "$@"

for tool in openssl mosquitto_sub mosquitto_pub; do
	command -v "$tool" >/dev/null || fa_skip "$tool is not installed"
done
mosquitto=${FLEETAUTH_MOSQUITTO:-/usr/sbin/mosquitto}
[[ -x $mosquitto ]] || fa_skip "$mosquitto is not installed"

dir=$FA_TMP/broker
mkdir -p "$dir"
cd "$dir"

# A private CA and two server certificates for 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout ca.key -out ca.pem -days 1 -subj /CN=tls-reload-ca \
	2>/dev/null || fa_fail "openssl could not create the test CA"
printf 'subjectAltName=IP:127.0.0.1\n' >server.ext
for name in old new; do
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$name.key" -out "$name.csr" -subj /CN=127.0.0.1 \
		2>/dev/null || fa_fail "openssl could not create key $name"
	openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key \
		-set_serial "0x$(openssl rand -hex 16)" -days 1 \
		-extfile server.ext -out "$name.pem" 2>/dev/null ||
		fa_fail "openssl could not sign certificate $name"
done
# Client certificates from the first CA and from a second one that the
# cafile lists only after the reload.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout ca2.key -out ca2.pem -days 1 -subj /CN=tls-reload-ca-2 \
	2>/dev/null || fa_fail "openssl could not create the second CA"
for name in client client2; do
	signer=ca
	[[ $name == client ]] || signer=ca2
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$name.key" -out "$name.csr" -subj "/CN=$name" \
		2>/dev/null || fa_fail "openssl could not create key $name"
	openssl x509 -req -in "$name.csr" -CA "$signer.pem" \
		-CAkey "$signer.key" -set_serial "0x$(openssl rand -hex 16)" \
		-days 1 -out "$name.pem" 2>/dev/null ||
		fa_fail "openssl could not sign certificate $name"
done
cp old.pem server.pem
cp old.key server.key
cp ca.pem cafile.pem

port=$(fa_free_port)
cat >mosquitto.conf <<CONF
per_listener_settings false
allow_anonymous true
persistence false
log_dest file $dir/mosquitto.log
log_type all
listener $port 127.0.0.1
cafile $dir/cafile.pem
certfile $dir/server.pem
keyfile $dir/server.key
require_certificate true
CONF
# Mosquitto started as root drops to the mosquitto user before it opens
# its files.
if ((EUID == 0)); then
	chmod 0755 "$FA_TMP"
	chown -R mosquitto:mosquitto "$dir"
fi
"$mosquitto" -c mosquitto.conf </dev/null >/dev/null 2>&1 &
broker_pid=$!
fa_on_exit "kill $broker_pid 2>/dev/null"

# Prints the SHA-256 fingerprint of the certificate a new TLS handshake
# presents.
served_fingerprint()
{
	timeout 5 openssl s_client -connect "127.0.0.1:$port" -CAfile ca.pem \
		-cert client.pem -key client.key </dev/null 2>/dev/null |
		openssl x509 -noout -fingerprint -sha256 2>/dev/null
}

fingerprint()
{
	openssl x509 -in "$1" -noout -fingerprint -sha256
}

fa_wait_for '[[ -n $(served_fingerprint) ]]' 10
fa_expect_eq "$(served_fingerprint)" "$(fingerprint old.pem)" \
	"certificate before the reload"

# A subscriber that stays connected across the reload.
tls=(--cafile "$dir/ca.pem" --cert "$dir/client.pem" --key "$dir/client.key")
mosquitto_sub -h 127.0.0.1 -p "$port" "${tls[@]}" -i keeper \
	-t reload/test >"$dir/received" 2>"$dir/sub.err" </dev/null &
sub_pid=$!
fa_on_exit "kill $sub_pid 2>/dev/null"
fa_wait_for "grep -q 'keeper 0 reload/test' '$dir/mosquitto.log'" 10
mosquitto_pub -h 127.0.0.1 -p "$port" "${tls[@]}" \
	-t reload/test -m before ||
	fa_fail "publish before the reload failed"
fa_wait_for "grep -qx before '$dir/received'" 10

# Replace the files in place (as a deployment tool would) and send SIGHUP.
cp new.pem server.pem
cp new.key server.key
cat ca.pem ca2.pem >cafile.pem
kill -HUP "$broker_pid"
fa_wait_for "grep -q 'Reloading config' '$dir/mosquitto.log'" 10
fa_wait_for '[[ $(served_fingerprint) == "$(fingerprint new.pem)" ]]' 10

fa_pid_running "$sub_pid" ||
	fa_fail "the subscriber was disconnected by the reload:" \
		"$(cat "$dir/sub.err")"
mosquitto_pub -h 127.0.0.1 -p "$port" "${tls[@]}" \
	-t reload/test -m after ||
	fa_fail "publish after the reload failed"
fa_wait_for "grep -qx after '$dir/received'" 10
fa_expect_eq "$(grep -c 'New client connected.*as keeper' \
	"$dir/mosquitto.log")" 1 "connections of the subscriber"

# The second CA is in the cafile now, but the broker still trusts only the
# cafile it read at start.
if timeout 10 mosquitto_pub -h 127.0.0.1 -p "$port" --cafile "$dir/ca.pem" \
	--cert "$dir/client2.pem" --key "$dir/client2.key" -t reload/test \
	-m refused 2>/dev/null; then
	fa_fail "a client of the CA added before SIGHUP connected; this" \
		"Mosquitto reloads cafile, so docs/operations.md needs an update"
fi

# After a restart the same client is accepted, so the refusal above came
# from the stale cafile and not from the certificate.
kill "$sub_pid" "$broker_pid"
wait "$broker_pid" 2>/dev/null || true
"$mosquitto" -c mosquitto.conf </dev/null >/dev/null 2>&1 &
broker_pid=$!
fa_on_exit "kill $broker_pid 2>/dev/null"
fa_wait_for '[[ -n $(served_fingerprint) ]]' 10
timeout 10 mosquitto_pub -h 127.0.0.1 -p "$port" --cafile "$dir/ca.pem" \
	--cert "$dir/client2.pem" --key "$dir/client2.key" -t reload/test \
	-m accepted || fa_fail "the client of the second CA was refused" \
	"after a restart"

echo "PASS: $(basename "$0")"
