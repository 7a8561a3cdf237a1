-- 004: TLS keys of the servers, endorsed by the deployment's identity key (lib/tlsid.h).
-- Netmaps carry every unexpired endorsement, so pinned clients follow a new or rotated
-- server key once it is published, before it is used.
CREATE TABLE tls_pins (
	pin        text PRIMARY KEY,       -- "sha256//<base64 SPKI hash>"
	not_after  bigint NOT NULL,        -- unix seconds
	sig        text NOT NULL,          -- base64 Ed25519 endorsement by the identity key
	server     text NOT NULL,          -- the URL the server listens on (informational)
	created_at timestamptz NOT NULL DEFAULT now()
);
