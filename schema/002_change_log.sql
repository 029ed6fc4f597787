-- Change feed for the brokers. Every change that can alter a broker decision
-- appends a row here (by trigger, so no writer can forget it), and the row id
-- is sent with NOTIFY on channel 'fleetauth_change'. A broker that missed
-- notifications catches up by reading every row above the last id it applied.
--
-- kind          subject       what a broker reloads
-- device        device id     device status, carrier and active certificates
-- user          user id       role, carrier and status
-- family        family id     whether the refresh-token family is revoked
-- access_token  jti           one revoked access token
-- assignment    load id       the drivers assigned to (carrier_id, load)
-- signing_key   kid           the key's status, algorithm and public key

CREATE TABLE change_log (
	id          bigserial PRIMARY KEY,
	at          timestamptz NOT NULL DEFAULT clock_timestamp(),
	kind        text NOT NULL CHECK (kind IN ('device', 'user', 'family',
		'access_token', 'assignment', 'signing_key')),
	carrier_id  text,
	subject     text NOT NULL
);

CREATE FUNCTION change_log_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('fleetauth_change', NEW.id::text);
	RETURN NULL;
END $$;

CREATE TRIGGER change_log_notify AFTER INSERT ON change_log
	FOR EACH ROW EXECUTE FUNCTION change_log_notify();

CREATE FUNCTION change_log_record() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	r record;
BEGIN
	IF TG_OP = 'DELETE' THEN
		r := OLD;
	ELSE
		r := NEW;
	END IF;
	IF TG_TABLE_NAME = 'devices' THEN
		INSERT INTO change_log (kind, carrier_id, subject)
		VALUES ('device', r.carrier_id, r.id);
	ELSIF TG_TABLE_NAME = 'device_certificates' THEN
		INSERT INTO change_log (kind, subject)
		VALUES ('device', r.device_id);
	ELSIF TG_TABLE_NAME = 'users' THEN
		INSERT INTO change_log (kind, carrier_id, subject)
		VALUES ('user', r.carrier_id, r.id);
	ELSIF TG_TABLE_NAME = 'refresh_families' THEN
		INSERT INTO change_log (kind, subject)
		VALUES ('family', r.id);
	ELSIF TG_TABLE_NAME = 'revoked_access_tokens' THEN
		INSERT INTO change_log (kind, subject)
		VALUES ('access_token', r.jti);
	ELSIF TG_TABLE_NAME = 'load_assignments' THEN
		INSERT INTO change_log (kind, carrier_id, subject)
		VALUES ('assignment', r.carrier_id, r.load_id);
	ELSIF TG_TABLE_NAME = 'signing_keys' THEN
		INSERT INTO change_log (kind, subject)
		VALUES ('signing_key', r.kid);
	END IF;
	RETURN NULL;
END $$;

CREATE TRIGGER devices_change AFTER INSERT OR UPDATE OR DELETE ON devices
	FOR EACH ROW EXECUTE FUNCTION change_log_record();
CREATE TRIGGER device_certificates_change
	AFTER INSERT OR UPDATE OR DELETE ON device_certificates
	FOR EACH ROW EXECUTE FUNCTION change_log_record();
CREATE TRIGGER users_change
	AFTER UPDATE OF role, status, carrier_id OR DELETE ON users
	FOR EACH ROW EXECUTE FUNCTION change_log_record();
CREATE TRIGGER users_insert_change AFTER INSERT ON users
	FOR EACH ROW EXECUTE FUNCTION change_log_record();
CREATE TRIGGER refresh_families_change
	AFTER UPDATE OF revoked_at ON refresh_families
	FOR EACH ROW EXECUTE FUNCTION change_log_record();
CREATE TRIGGER revoked_access_tokens_change
	AFTER INSERT ON revoked_access_tokens
	FOR EACH ROW EXECUTE FUNCTION change_log_record();
CREATE TRIGGER load_assignments_change
	AFTER INSERT OR UPDATE OR DELETE ON load_assignments
	FOR EACH ROW EXECUTE FUNCTION change_log_record();
CREATE TRIGGER signing_keys_change
	AFTER INSERT OR UPDATE OR DELETE ON signing_keys
	FOR EACH ROW EXECUTE FUNCTION change_log_record();

-- Read access for the brokers' database role, when it exists. The broker
-- role only reads; every write goes through fleetauthd.
DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleetauth_broker')
	THEN
		GRANT SELECT ON carriers, users, devices, device_certificates,
			refresh_families, revoked_access_tokens, loads,
			load_assignments, change_log
			TO fleetauth_broker;
		GRANT SELECT (kid, alg, public_pem, status, publish_until)
			ON signing_keys TO fleetauth_broker;
	END IF;
END $$;
