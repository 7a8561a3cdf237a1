-- 008: staged rotation of the servers' TLS keys (control/tls_admin.c).
-- A key is endorsed and published (every netmap carries every row) before a server serves
-- it: `next' (staged by `tls rotate'), `active' (served), `retiring' (no longer served,
-- still published so that nodes which missed the switch can follow; withdrawn at
-- retire_at or by `tls withdraw').
ALTER TABLE tls_pins ADD COLUMN server_id text;      -- DIR/server.id of the server holding the key
ALTER TABLE tls_pins ADD COLUMN state text NOT NULL DEFAULT 'active'
	CHECK (state IN ('next', 'active', 'retiring'));
ALTER TABLE tls_pins ADD COLUMN activated_at bigint; -- unix seconds
ALTER TABLE tls_pins ADD COLUMN retire_at bigint;    -- unix seconds, for `retiring'
