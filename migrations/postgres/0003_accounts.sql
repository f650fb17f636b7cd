-- Administrators, disabled accounts and one-time invitations ([auth] registration), and scoped,
-- expiring API keys limited to named functions.
ALTER TABLE users ADD COLUMN is_admin BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
-- On a server that already has accounts, the oldest one becomes its administrator.
UPDATE users SET is_admin = TRUE WHERE id = (SELECT id FROM users ORDER BY created_at, id LIMIT 1);

CREATE TABLE invites (
    code_hash  TEXT PRIMARY KEY,
    created_by TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    used_by    TEXT
);

-- Keys made before scopes existed could use the whole control plane: they keep `deploy`.
ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'deploy';
-- A JSON array of function names the key is limited to; NULL: every function of its owner.
ALTER TABLE api_keys ADD COLUMN functions TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
