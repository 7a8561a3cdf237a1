-- 007: auth-URL onboarding: short-lived, single-use approval links for pending nodes.
CREATE TABLE approval_codes (
	hash        bytea PRIMARY KEY,       -- SHA-256 of the code (the code is only in the link)
	node_id     bigint NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
	source      text NOT NULL,           -- address the registration came from
	expires_at  timestamptz NOT NULL,
	used_at     timestamptz
);
