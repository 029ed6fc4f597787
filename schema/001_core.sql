-- Core tables: carriers, principals (users and devices share one id space so
-- that an MQTT client id can never be claimed by both), credentials, loads,
-- tokens, keys, API keys and the audit trail.
--
-- Identifiers follow one rule everywhere: 1 to 64 characters of
-- [A-Za-z0-9_-], so that no id can put '/', '+', '#' or NUL into a topic.

CREATE DOMAIN fa_id AS text
	CHECK (VALUE ~ '^[A-Za-z0-9_-]{1,64}$');

CREATE TABLE carriers (
	id          fa_id PRIMARY KEY,
	name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
	time_zone   text NOT NULL DEFAULT 'UTC',
	created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row for every user and every device.
CREATE TABLE principals (
	id    fa_id PRIMARY KEY,
	kind  text NOT NULL CHECK (kind IN ('user', 'device')),
	UNIQUE (id, kind)
);

CREATE TABLE users (
	id             fa_id PRIMARY KEY,
	kind           text NOT NULL DEFAULT 'user' CHECK (kind = 'user'),
	carrier_id     fa_id REFERENCES carriers (id),
	role           text NOT NULL CHECK (role IN (
		'system_admin', 'system_operator', 'fleet_manager',
		'fleet_analyst', 'dispatcher', 'driver', 'shipper_admin',
		'shipping_coordinator', 'account_manager', 'warehouse_user')),
	status         text NOT NULL DEFAULT 'active'
		CHECK (status IN ('active', 'locked', 'disabled', 'deleted')),
	password_hash  text NOT NULL,
	-- Optional access window in the carrier's time zone; NULL means always.
	window_start   time,
	window_end     time,
	created_at     timestamptz NOT NULL DEFAULT now(),
	updated_at     timestamptz NOT NULL DEFAULT now(),
	FOREIGN KEY (id, kind) REFERENCES principals (id, kind),
	-- Carrier roles need a carrier; platform roles have none.
	CHECK (role NOT IN ('fleet_manager', 'fleet_analyst', 'dispatcher',
			    'driver') OR carrier_id IS NOT NULL),
	CHECK (role NOT IN ('system_admin', 'system_operator')
	       OR carrier_id IS NULL),
	CHECK ((window_start IS NULL) = (window_end IS NULL))
);
CREATE INDEX users_carrier_idx ON users (carrier_id);

-- Failed-login counters per account and per client address.
CREATE TABLE login_failures (
	scope          text NOT NULL CHECK (scope IN ('user', 'address')),
	key            text NOT NULL,
	failures       integer NOT NULL DEFAULT 0,
	lockouts       integer NOT NULL DEFAULT 0,
	last_failure   timestamptz NOT NULL DEFAULT now(),
	locked_until   timestamptz,
	PRIMARY KEY (scope, key)
);

-- TOTP seeds, sealed with AES-256-GCM under the key-encryption key kek_id.
CREATE TABLE user_totp (
	user_id       fa_id PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
	secret_enc    bytea NOT NULL,
	kek_id        text NOT NULL,
	confirmed_at  timestamptz,
	-- Highest RFC 6238 time step accepted; a step is never accepted twice.
	last_step     bigint NOT NULL DEFAULT 0,
	created_at    timestamptz NOT NULL DEFAULT now()
);

-- Short-lived tokens that carry a login from the password step to the MFA
-- step. Stored as SHA-256 hashes.
CREATE TABLE mfa_challenges (
	token_hash  bytea PRIMARY KEY,
	user_id     fa_id NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	expires_at  timestamptz NOT NULL,
	used_at     timestamptz,
	address     text
);

CREATE TABLE devices (
	id             fa_id PRIMARY KEY,
	kind           text NOT NULL DEFAULT 'device' CHECK (kind = 'device'),
	carrier_id     fa_id NOT NULL REFERENCES carriers (id),
	device_type    text NOT NULL CHECK (device_type IN ('truck', 'phone')),
	label          text NOT NULL DEFAULT ''
		CHECK (length(label) <= 200),
	status         text NOT NULL DEFAULT 'pending'
		CHECK (status IN ('pending', 'active', 'revoked')),
	-- A phone may be bound to the driver who uses it.
	user_id        fa_id REFERENCES users (id),
	created_by     text NOT NULL,
	created_at     timestamptz NOT NULL DEFAULT now(),
	enrolled_at    timestamptz,
	revoked_at     timestamptz,
	revoke_reason  text,
	FOREIGN KEY (id, kind) REFERENCES principals (id, kind)
);
CREATE INDEX devices_carrier_idx ON devices (carrier_id);

CREATE TABLE device_certificates (
	serial              text PRIMARY KEY,  -- lower-case hex
	device_id           fa_id NOT NULL REFERENCES devices (id),
	fingerprint_sha256  text NOT NULL UNIQUE,  -- lower-case hex, 64 chars
	not_before          timestamptz NOT NULL,
	not_after           timestamptz NOT NULL,
	pem                 text NOT NULL,
	status              text NOT NULL DEFAULT 'active'
		CHECK (status IN ('active', 'superseded', 'revoked')),
	issued_at           timestamptz NOT NULL DEFAULT now(),
	revoked_at          timestamptz
);
CREATE INDEX device_certificates_device_idx
	ON device_certificates (device_id);

CREATE TABLE enrollment_codes (
	code_hash   bytea PRIMARY KEY,
	device_id   fa_id NOT NULL REFERENCES devices (id),
	expires_at  timestamptz NOT NULL,
	used_at     timestamptz,
	created_by  text NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now()
);

-- Fleet CA certificates; the private key is sealed like TOTP seeds.
CREATE TABLE fleet_ca (
	id          serial PRIMARY KEY,
	cert_pem    text NOT NULL,
	key_enc     bytea NOT NULL,
	kek_id      text NOT NULL,
	status      text NOT NULL DEFAULT 'current'
		CHECK (status IN ('current', 'previous', 'retired')),
	crl_number  bigint NOT NULL DEFAULT 0,
	created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX fleet_ca_one_current ON fleet_ca (status)
	WHERE status = 'current';

-- P-256 public keys from the phones' hardware keystores.
CREATE TABLE device_keys (
	id          fa_id PRIMARY KEY,
	user_id     fa_id NOT NULL REFERENCES users (id),
	device_id   fa_id REFERENCES devices (id),
	public_pem  text NOT NULL,
	status      text NOT NULL DEFAULT 'active'
		CHECK (status IN ('active', 'revoked')),
	created_at  timestamptz NOT NULL DEFAULT now(),
	revoked_at  timestamptz
);

CREATE TABLE device_key_nonces (
	nonce_hash  bytea PRIMARY KEY,
	key_id      fa_id NOT NULL REFERENCES device_keys (id),
	expires_at  timestamptz NOT NULL,
	used_at     timestamptz
);

-- Token-signing keys. Status 'current' signs; 'previous' is still published
-- in the JWKS and accepted until publish_until; 'retired' is neither.
CREATE TABLE signing_keys (
	kid            text PRIMARY KEY
		CHECK (kid ~ '^[A-Za-z0-9_-]{1,64}$'),
	alg            text NOT NULL CHECK (alg IN ('RS256', 'ES256')),
	public_pem     text NOT NULL,
	private_enc    bytea NOT NULL,
	kek_id         text NOT NULL,
	status         text NOT NULL DEFAULT 'current'
		CHECK (status IN ('current', 'previous', 'retired')),
	created_at     timestamptz NOT NULL DEFAULT now(),
	publish_until  timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (status)
	WHERE status = 'current';

-- A refresh-token family is one login; every rotation adds a token to it.
CREATE TABLE refresh_families (
	id             fa_id PRIMARY KEY,
	user_id        fa_id NOT NULL REFERENCES users (id),
	device_id      fa_id REFERENCES devices (id),
	amr            text[] NOT NULL,
	created_at     timestamptz NOT NULL DEFAULT now(),
	expires_at     timestamptz NOT NULL,
	revoked_at     timestamptz,
	revoke_reason  text
);
CREATE INDEX refresh_families_user_idx ON refresh_families (user_id);
CREATE INDEX refresh_families_device_idx ON refresh_families (device_id);

CREATE TABLE refresh_tokens (
	token_hash  bytea PRIMARY KEY,
	family_id   fa_id NOT NULL REFERENCES refresh_families (id),
	created_at  timestamptz NOT NULL DEFAULT now(),
	expires_at  timestamptz NOT NULL,
	rotated_at  timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

-- Single access tokens revoked before their expiry.
CREATE TABLE revoked_access_tokens (
	jti         text PRIMARY KEY,
	expires_at  timestamptz NOT NULL,
	revoked_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE loads (
	carrier_id  fa_id NOT NULL REFERENCES carriers (id),
	id          fa_id NOT NULL,
	reference   text NOT NULL DEFAULT ''
		CHECK (length(reference) <= 200),
	created_by  text NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (carrier_id, id)
);

CREATE TABLE load_assignments (
	carrier_id   fa_id NOT NULL,
	load_id      fa_id NOT NULL,
	driver_id    fa_id NOT NULL REFERENCES users (id),
	assigned_by  text NOT NULL,
	assigned_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (carrier_id, load_id, driver_id),
	FOREIGN KEY (carrier_id, load_id) REFERENCES loads (carrier_id, id)
);
CREATE INDEX load_assignments_driver_idx ON load_assignments (driver_id);

-- Service-to-service keys. The secret is 'fak_' + 43 base64url characters;
-- only its SHA-256 is stored. The prefix column keeps the first characters
-- so that an operator can recognise a key in a listing.
CREATE TABLE api_keys (
	id          fa_id PRIMARY KEY,
	name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
	key_prefix  text NOT NULL,
	key_hash    bytea NOT NULL UNIQUE,
	role        text NOT NULL,
	carrier_id  fa_id REFERENCES carriers (id),
	scopes      text[] NOT NULL,
	created_by  text NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now(),
	expires_at  timestamptz NOT NULL,
	revoked_at  timestamptz,
	last_used_at timestamptz
);

-- Append-only audit trail.
CREATE TABLE audit_events (
	id          bigserial PRIMARY KEY,
	at          timestamptz NOT NULL DEFAULT now(),
	actor       text NOT NULL,
	action      text NOT NULL,
	target      text,
	outcome     text NOT NULL,
	address     text,
	request_id  text,
	detail      jsonb
);
CREATE INDEX audit_events_at_idx ON audit_events (at);

CREATE FUNCTION audit_events_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit_events is append-only';
END $$;

CREATE TRIGGER audit_events_append_only
	BEFORE UPDATE OR DELETE ON audit_events
	FOR EACH ROW EXECUTE FUNCTION audit_events_reject_change();
CREATE TRIGGER audit_events_no_truncate
	BEFORE TRUNCATE ON audit_events
	FOR EACH STATEMENT EXECUTE FUNCTION audit_events_reject_change();
