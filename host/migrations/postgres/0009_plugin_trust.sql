-- Plugin trust (issue 14): the signature a version was accepted with, what
-- it imports (for the permission review of the next upload), the keys a
-- tenant trusts, and which plugin version ran each delivery attempt.
ALTER TABLE plugins ADD COLUMN signature TEXT;
ALTER TABLE plugins ADD COLUMN key_id TEXT;
ALTER TABLE plugins ADD COLUMN imports TEXT NOT NULL DEFAULT '[]';

CREATE TABLE plugin_keys (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);

ALTER TABLE delivery_attempts ADD COLUMN plugin_sha256 TEXT;
