-- 009: approval-page sessions live in the database, so every server of an HA set knows an
-- admin who signed in on another; and tokenless registrations (auth-URL onboarding) wait
-- here, with no node and no address, until an admin admits them to a network.
CREATE TABLE approval_sessions (
	hash        bytea PRIMARY KEY,       -- SHA-256 of the session id (the id is only in the cookie)
	admin_key   text NOT NULL,           -- the admin key's id (first 12 hex digits of its hash)
	created_at  timestamptz NOT NULL DEFAULT now(),
	expires_at  timestamptz NOT NULL
);
CREATE INDEX approval_sessions_expires ON approval_sessions (expires_at);

CREATE TABLE device_requests (
	id          bigserial PRIMARY KEY,
	code_hash   bytea NOT NULL UNIQUE,   -- SHA-256 of the approval code (the code is only in the link)
	machine_key text NOT NULL,           -- proven: the request was signed by it
	wg_key      text NOT NULL,
	hostname    text NOT NULL,
	routes      text[] NOT NULL DEFAULT '{}',
	endpoints   text[] NOT NULL DEFAULT '{}',
	listen_port integer,
	source      text NOT NULL,           -- address the request came from
	created_at  timestamptz NOT NULL DEFAULT now(),
	expires_at  timestamptz NOT NULL,
	status      text NOT NULL DEFAULT 'waiting' CHECK (status IN ('waiting', 'approved', 'rejected')),
	decided_at  timestamptz,
	decided_by  text,                    -- admin key id
	node_id     bigint REFERENCES nodes(id) ON DELETE SET NULL
);
CREATE INDEX device_requests_key ON device_requests (machine_key, created_at);
CREATE INDEX device_requests_source ON device_requests (source, created_at);
