-- Messages and languages (issue 11): the user's language, a tenant
-- channel's own templates, and what a delivery's message was written in.
ALTER TABLE users ADD COLUMN language TEXT;             -- BCP 47; NULL: none stored
ALTER TABLE tenant_channels ADD COLUMN templates TEXT;  -- JSON TemplatesSpec; NULL: built-in messages
ALTER TABLE deliveries ADD COLUMN locale TEXT;
ALTER TABLE deliveries ADD COLUMN sms_encoding TEXT;    -- GSM-7 | UCS-2; NULL for email
ALTER TABLE deliveries ADD COLUMN sms_segments BIGINT;
