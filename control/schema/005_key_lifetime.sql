-- 005: node key lifetime per network, rotation and expiry.
ALTER TABLE networks ADD COLUMN key_lifetime bigint;  -- seconds; NULL: keys never expire
-- set once the expiry of the node's key has been published (version moved); a rotation
-- clears it
ALTER TABLE nodes ADD COLUMN expiry_noted boolean NOT NULL DEFAULT false;
CREATE INDEX nodes_expiry ON nodes (key_expiry) WHERE NOT expiry_noted;
