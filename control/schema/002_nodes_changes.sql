-- 002: nodes, the netmap change log and the signed-request replay window.
CREATE TABLE nodes (
	id           bigserial PRIMARY KEY,
	network_id   uuid NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
	name         text NOT NULL,              -- unique DNS label within the network
	hostname     text NOT NULL,              -- as the node reported it
	wg_key       text NOT NULL,
	machine_key  text NOT NULL UNIQUE,       -- base64 Ed25519 public key: identifies signed requests
	host_index   integer NOT NULL,
	ipv4         inet NOT NULL,
	ipv6         inet NOT NULL,
	routes       text[] NOT NULL DEFAULT '{}',
	endpoints    text[] NOT NULL DEFAULT '{}',
	listen_port  integer,
	status       text NOT NULL DEFAULT 'active',
	key_expiry   timestamptz,
	tags         text[] NOT NULL DEFAULT '{}',
	token_id     text,
	created_at   timestamptz NOT NULL DEFAULT now(),
	last_seen    timestamptz,
	UNIQUE (network_id, name),
	UNIQUE (network_id, host_index),
	UNIQUE (network_id, wg_key)
);
CREATE INDEX nodes_routes ON nodes USING gin (routes);

-- One row per node touched by a netmap version; deltas are computed from it.
CREATE TABLE changes (
	network_id  uuid NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
	version     bigint NOT NULL,
	node_id     bigint NOT NULL,
	PRIMARY KEY (network_id, version, node_id)
);

-- Nonces of signed requests seen within the clock-skew window, shared by every server.
CREATE TABLE nonces (
	machine_key text NOT NULL,
	nonce       text NOT NULL,
	seen_at     timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (machine_key, nonce)
);
CREATE INDEX nonces_seen ON nonces (seen_at);
