-- The operator console (issue 17): signed-in browser sessions. `tenant` is
-- NULL for the operator (admin token), else the tenant whose key signed in.
-- Only the SHA-256 of the cookie's token is stored.
CREATE TABLE console_sessions (
    token_hash  TEXT PRIMARY KEY,
    tenant      TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
