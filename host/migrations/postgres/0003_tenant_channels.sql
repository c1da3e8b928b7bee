-- Channels tenants configure over the API. Secrets are encrypted JSON.
CREATE TABLE tenant_channels (
    tenant        TEXT NOT NULL,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,       -- smtp | pushover | url | sms-http | sms-smtp | plugin
    config        TEXT NOT NULL,       -- JSON object
    secrets       BYTEA,               -- encrypted JSON object
    secret_keys   TEXT NOT NULL,       -- JSON array of the secrets' names
    plugin        TEXT,
    allowed_hosts TEXT NOT NULL,       -- JSON array
    send_to_type  TEXT,
    send_to_regex TEXT,
    fallback      TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);
