-- Plugins tenants upload. The bytes live here so every host can compile
-- them into its own cache; `info` is describe() as JSON.
CREATE TABLE plugins (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    info        TEXT NOT NULL,
    wasm        BYTEA NOT NULL,
    uploaded_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);
