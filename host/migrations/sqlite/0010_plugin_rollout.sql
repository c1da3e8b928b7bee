-- Staged plugin rollout (issue 14 point 3): the version under trial beside
-- the live one (`plugins`), and the outcomes the rollback decision reads.
-- One row per (tenant, plugin); it stays after the rollout ends so the
-- plugin's GET can say how it ended.
CREATE TABLE plugin_rollouts (
    tenant         TEXT NOT NULL,
    name           TEXT NOT NULL,
    state          TEXT NOT NULL,          -- canary | promoted | rolled_back
    percent        INTEGER NOT NULL,
    stable_sha256  TEXT NOT NULL,
    sha256         TEXT NOT NULL,
    size           INTEGER NOT NULL,
    info           TEXT NOT NULL,
    wasm           BLOB NOT NULL,
    signature      TEXT,
    key_id         TEXT,
    imports        TEXT NOT NULL,
    reason         TEXT,
    started_at     INTEGER NOT NULL,
    ended_at       INTEGER,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE plugin_rollout_outcomes (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant   TEXT NOT NULL,
    name     TEXT NOT NULL,
    sha256   TEXT NOT NULL,
    failed   INTEGER NOT NULL,
    at       INTEGER NOT NULL
);
CREATE INDEX plugin_rollout_outcomes_version
    ON plugin_rollout_outcomes (tenant, name, sha256, id);
