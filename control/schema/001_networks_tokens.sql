-- 001: networks, enrollment tokens, admin keys.
-- The runner wraps every migration in the start-up transaction and records its number in lsc_schema.
CREATE TABLE networks (
	id          uuid PRIMARY KEY,
	name        text NOT NULL UNIQUE,
	ipv4        cidr NOT NULL,
	ipv6        cidr NOT NULL,
	dns_suffix  text NOT NULL,
	version     bigint NOT NULL DEFAULT 1,  -- netmap version: moves with every change, in its transaction
	net_version bigint NOT NULL DEFAULT 1,  -- version at which the network section last changed
	dns_version bigint NOT NULL DEFAULT 1,  -- version at which the DNS records last changed
	log_floor   bigint NOT NULL DEFAULT 0,  -- the change log is complete for versions > log_floor
	created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX networks_ipv4 ON networks USING gist (ipv4 inet_ops);

CREATE TABLE tokens (
	id          text PRIMARY KEY,
	network_id  uuid NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
	hash        bytea NOT NULL UNIQUE,     -- SHA-256 of the secret; the secret itself is never stored
	expires_at  timestamptz NOT NULL,
	max_uses    integer NOT NULL,
	uses        integer NOT NULL DEFAULT 0,
	tags        text[] NOT NULL DEFAULT '{}',
	revoked_at  timestamptz,
	created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tokens_network ON tokens (network_id);

CREATE TABLE admin_keys (
	hash        bytea PRIMARY KEY,         -- SHA-256 of the key
	created_at  timestamptz NOT NULL DEFAULT now()
);
