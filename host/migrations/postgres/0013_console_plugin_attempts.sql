-- The console's plugin page counts attempts by plugin version: only
-- plugin attempts are indexed, so the count does not scan every attempt.
CREATE INDEX delivery_attempts_by_plugin ON delivery_attempts (plugin_sha256)
    WHERE plugin_sha256 IS NOT NULL;
