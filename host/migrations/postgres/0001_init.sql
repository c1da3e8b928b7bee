-- PostgreSQL schema: the same tables and meaning as migrations/sqlite.
-- Times are unix milliseconds (BIGINT), as on SQLite; every integer column
-- is BIGINT so the store reads them as i64 on both backends.

-- Key/value settings the server keeps for itself (admin token hash, …).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    name         TEXT PRIMARY KEY,
    api_key_hash TEXT,               -- hex SHA-256 of the API key; NULL: admin token only
    created_at   BIGINT NOT NULL
);
CREATE INDEX tenants_by_key ON tenants (api_key_hash);

-- One row per delivery; the payload (send-to, code, text) is encrypted.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    channel         TEXT NOT NULL,
    send_to_masked  TEXT NOT NULL,
    username        TEXT,
    payload         BYTEA NOT NULL,
    status          TEXT NOT NULL,   -- queued | sending | delivered | failed | expired
    attempt_count   BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    expires_at      BIGINT NOT NULL,
    fallback_of     TEXT,
    fallback_depth  BIGINT NOT NULL DEFAULT 0,
    provider_id     TEXT,
    log             TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
-- Workers scan only pending rows: a partial index stays small however
-- long the delivered history grows.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE status IN ('queued', 'sending');
CREATE INDEX deliveries_by_tenant ON deliveries (tenant, created_at);

CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    n           BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    outcome     TEXT NOT NULL,       -- delivered | transient | permanent
    detail      TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, n)
);
