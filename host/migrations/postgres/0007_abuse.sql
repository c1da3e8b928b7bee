-- Consecutive failed second-factor checks (NIST SP 800-63B-4), per
-- user and method (`user:<tenant>:<user id>:<method>`) or per Verify
-- destination (`verify:<tenant>:<channel>:<sha256 of the send-to>`).
-- A new code does not reset them; a success deletes the row.
CREATE TABLE failures (
    key           TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    failures      BIGINT NOT NULL,          -- consecutive, since the last success or lock end
    locks         BIGINT NOT NULL DEFAULT 0, -- locks since the last success (the delay doubles)
    locked_until  BIGINT,                   -- NULL: not locked; 9223372036854775807: until unlocked
    updated_at    BIGINT NOT NULL
);
CREATE INDEX failures_by_tenant ON failures (tenant, locked_until);

-- Which failure count a verification's checks go to.
ALTER TABLE verifications ADD COLUMN failure_key TEXT;

-- SMS-pumping guard: one row per code sent to a phone-like destination,
-- `converted` = 1 once that subject's code was checked successfully.
CREATE TABLE fraud_sends (
    tenant     TEXT NOT NULL,
    prefix     TEXT NOT NULL,             -- +<country code><first digits>
    subject    TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    sent_at    BIGINT NOT NULL,
    converted  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX fraud_sends_by_prefix ON fraud_sends (tenant, prefix, sent_at);
CREATE INDEX fraud_sends_by_subject ON fraud_sends (tenant, subject, purpose);

-- Prefixes the guard stopped (mode 'blocked') or flagged in monitor mode.
CREATE TABLE fraud_prefixes (
    tenant    TEXT NOT NULL,
    prefix    TEXT NOT NULL,
    country   TEXT,
    mode      TEXT NOT NULL,              -- blocked | monitor
    sends     BIGINT NOT NULL,              -- the window's figures when it was flagged
    checks    BIGINT NOT NULL,
    since     BIGINT NOT NULL,
    PRIMARY KEY (tenant, prefix)
);
