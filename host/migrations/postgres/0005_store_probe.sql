-- One row per host: /readyz proves the store can write by updating it.
CREATE TABLE store_probe (
    host TEXT PRIMARY KEY,
    at BIGINT NOT NULL
);
