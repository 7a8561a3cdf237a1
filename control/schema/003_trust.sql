-- 003: trust: admin approval of nodes and routes, ACL policy, audit log.
-- require_approval: new nodes start `pending' (no peers, seen by no one) until approved.
-- route_approval: advertised routes (and 0.0.0.0/0, ::/0) take effect only once approved.
ALTER TABLE networks ADD COLUMN require_approval boolean NOT NULL DEFAULT false;
ALTER TABLE networks ADD COLUMN route_approval boolean NOT NULL DEFAULT false;
ALTER TABLE networks ADD COLUMN acl_policy text;  -- JSON (lib/acl.h); NULL: allow all
ALTER TABLE nodes ADD COLUMN approved_routes text[] NOT NULL DEFAULT '{}';
-- version at which the node's status last changed: older clients of it get a full map
ALTER TABLE nodes ADD COLUMN status_version bigint NOT NULL DEFAULT 0;

-- Append-only hash chain of security events (lib/audit.h). Rows are never updated.
CREATE TABLE audit_log (
	seq   bigint PRIMARY KEY,
	time  bigint NOT NULL,
	type  text NOT NULL,
	data  text NOT NULL,     -- canonical JSON
	hash  bytea NOT NULL
);

-- The deployment's Ed25519 identity public key (the secret stays in the servers' state
-- directories): a server with another key refuses to start.
CREATE TABLE identity (
	id          integer PRIMARY KEY CHECK (id = 1),
	public_key  text NOT NULL
);
