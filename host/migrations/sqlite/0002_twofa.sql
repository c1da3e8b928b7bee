CREATE TABLE users (
    tenant          TEXT NOT NULL,
    id              TEXT NOT NULL,
    username        TEXT NOT NULL,
    password_hash   TEXT,            -- argon2id PHC string of the hex SHA-256 of the password
    email           TEXT,
    email_verified  INTEGER NOT NULL DEFAULT 0,
    name            TEXT,
    default_method  TEXT,            -- the method setTwoFactor chose; NULL: first enabled
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, username)
);

-- Enabled 2FA methods: `email`, a channel name, or `totp`.
CREATE TABLE user_methods (
    tenant     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    method     TEXT NOT NULL,
    send_to    TEXT,                 -- NULL for email (the user's address) and totp
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, user_id, method),
    FOREIGN KEY (tenant, user_id) REFERENCES users (tenant, id) ON DELETE CASCADE
);

CREATE TABLE user_totp (
    tenant       TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    secret       BLOB,               -- encrypted; set once confirmed
    temp_secret  BLOB,               -- encrypted; pending enrolment
    last_step    INTEGER NOT NULL DEFAULT 0,   -- replay guard: highest accepted time step
    PRIMARY KEY (tenant, user_id),
    FOREIGN KEY (tenant, user_id) REFERENCES users (tenant, id) ON DELETE CASCADE
);

CREATE TABLE backup_codes (
    tenant    TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    code_mac  TEXT NOT NULL,
    PRIMARY KEY (tenant, user_id, code_mac),
    FOREIGN KEY (tenant, user_id) REFERENCES users (tenant, id) ON DELETE CASCADE
);

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    FOREIGN KEY (tenant, user_id) REFERENCES users (tenant, id) ON DELETE CASCADE
);
CREATE INDEX sessions_by_user ON sessions (tenant, user_id);

-- One live code per subject and purpose; stored only as an HMAC.
CREATE TABLE codes (
    tenant      TEXT NOT NULL,
    subject     TEXT NOT NULL,       -- user:<id> | verify:<id>
    purpose     TEXT NOT NULL,       -- the method (`email`, a channel) or enrol:<channel>
    code_mac    TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, subject, purpose)
);

CREATE TABLE verifications (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    channel     TEXT NOT NULL,
    to_masked   TEXT NOT NULL,
    username    TEXT,
    status      TEXT NOT NULL,       -- pending | approved | expired | max_attempts_reached | canceled
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Fixed-window counters shared by every host using the store.
CREATE TABLE rate_limits (
    key          TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL
);

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant  TEXT NOT NULL,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT,
    detail  TEXT
);
CREATE INDEX audit_by_tenant ON audit (tenant, id);
