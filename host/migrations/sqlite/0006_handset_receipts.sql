-- Delivery receipts an SMSC sent (SMPP deliver_sm), by the message id it
-- gave the submit: a delivery's handset state is the receipt whose
-- message_id is its provider_id. Kept apart from deliveries so a receipt
-- that overtakes the record of its submit (or arrives on another host's
-- session) is not lost; rows older than 30 days are pruned.
CREATE TABLE handset_receipts (
    tenant     TEXT NOT NULL,
    channel    TEXT NOT NULL,
    message_id TEXT NOT NULL,
    state      TEXT NOT NULL,   -- delivered | undeliverable | expired | rejected | unknown
    at         INTEGER NOT NULL,     -- unix ms, when postern got it
    PRIMARY KEY (tenant, channel, message_id)
);
CREATE INDEX handset_receipts_at ON handset_receipts (at);
-- A receipt finds its delivery by the SMSC's message id.
CREATE INDEX deliveries_by_provider_id ON deliveries (provider_id);
