-- Whether a code's send was counted by the fraud guard: only then does a
-- successful check have sends to mark converted (no write otherwise).
-- Codes stored before this column are treated as counted.
ALTER TABLE codes ADD COLUMN fraud_tracked INTEGER NOT NULL DEFAULT 1;
