-- 006: admin keys can be named, expire and be revoked. A key's id is the first 12 hex
-- digits of its hash.
ALTER TABLE admin_keys ADD COLUMN name text NOT NULL DEFAULT 'initial';
ALTER TABLE admin_keys ADD COLUMN expires_at timestamptz;
ALTER TABLE admin_keys ADD COLUMN revoked_at timestamptz;
ALTER TABLE admin_keys ADD COLUMN last_used_at timestamptz;
