-- Key/value settings the server keeps for itself (admin token hash, …).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    name         TEXT PRIMARY KEY,
    api_key_hash TEXT,               -- hex SHA-256 of the API key; NULL: admin token only
    created_at   INTEGER NOT NULL    -- unix ms
);

-- One row per delivery; the payload (send-to, code, text) is encrypted.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    channel         TEXT NOT NULL,
    send_to_masked  TEXT NOT NULL,
    username        TEXT,
    payload         BLOB NOT NULL,
    status          TEXT NOT NULL,   -- queued | sending | delivered | failed | expired
    attempt_count   INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER,
    expires_at      INTEGER NOT NULL,
    fallback_of     TEXT,
    fallback_depth  INTEGER NOT NULL DEFAULT 0,
    provider_id     TEXT,
    log             TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_by_tenant ON deliveries (tenant, created_at);

CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    n           INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    outcome     TEXT NOT NULL,       -- delivered | transient | permanent
    detail      TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, n)
);
