-- Erasure of personal data. audit_events is append-only, so erasing a user
-- never rewrites audit rows. Instead each erased principal gets a random
-- pseudonym here, and every reader of the audit trail (GET /v1/audit and
-- GET /v1/users/{id}/export) shows the pseudonym in place of the id in the
-- actor and target columns.
--
-- The id itself stays in users, principals and this table because it is the
-- primary key that devices, refresh families and load assignments refer to.
-- Ids are opaque identifiers chosen by the operator: operators must not use
-- real names or e-mail addresses as user ids.

CREATE TABLE erased_principals (
	id         fa_id PRIMARY KEY REFERENCES principals (id),
	pseudonym  text NOT NULL UNIQUE
		CHECK (pseudonym ~ '^erased-[0-9a-f]{16}$'),
	erased_at  timestamptz NOT NULL DEFAULT now()
);
