-- Broker denials in the audit trail. The brokers' role only reads tables,
-- so the plugin records its denials through this one function. It runs
-- with the rights of the schema owner and writes only rows whose action
-- starts with "broker." and whose outcome is "denied", or "lost" for the
-- count of denials a broker could not queue. Every text is cut to a fixed
-- size.
--
-- events is a JSON array of objects, one per distinct denial in the
-- broker's last interval:
--   {"action": "connect" | "publish" | "subscribe" | "delivery" | "lost",
--    "reason": "token", "actor": "drv-1", "target": "fleet/c1/...",
--    "address": "203.0.113.7", "client_id": "drv-1:phone",
--    "broker": "mqtt-2", "count": 3, "first": 1796000000,
--    "last": 1796000004}
-- first and last are Unix seconds; the row's time is first, and count says
-- how many identical denials the row stands for. Returns the rows written.

CREATE FUNCTION broker_audit(events jsonb) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
DECLARE
	written integer;
BEGIN
	IF jsonb_typeof(events) IS DISTINCT FROM 'array' THEN
		RAISE EXCEPTION 'broker_audit expects a JSON array, got %',
			coalesce(jsonb_typeof(events), 'NULL');
	END IF;
	INSERT INTO audit_events (at, actor, action, target, outcome, address,
		detail)
	SELECT coalesce(to_timestamp((e->>'first')::double precision), now()),
		left(coalesce(nullif(e->>'actor', ''), '-'), 256),
		'broker.' || (e->>'action'),
		left(e->>'target', 1024),
		CASE WHEN e->>'action' = 'lost' THEN 'lost' ELSE 'denied' END,
		left(e->>'address', 128),
		jsonb_strip_nulls(jsonb_build_object(
			'reason', left(e->>'reason', 64),
			'client_id', left(e->>'client_id', 256),
			'broker', left(e->>'broker', 256),
			'count', greatest((e->>'count')::bigint, 1),
			'last_at', to_timestamp((e->>'last')::double precision)))
	FROM jsonb_array_elements(events) AS e
	WHERE e->>'action' IN ('connect', 'publish', 'subscribe', 'delivery',
		'lost');
	GET DIAGNOSTICS written = ROW_COUNT;
	RETURN written;
END $$;

REVOKE ALL ON FUNCTION broker_audit(jsonb) FROM PUBLIC;

DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleetauth_broker')
	THEN
		GRANT EXECUTE ON FUNCTION broker_audit(jsonb) TO fleetauth_broker;
	END IF;
END $$;
