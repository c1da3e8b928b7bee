-- Plugin tooling (issue 13): what each plugin attempt used, so an operator
-- sees which plugin is expensive. NULL for built-in senders.
ALTER TABLE delivery_attempts ADD COLUMN cpu_us BIGINT;
ALTER TABLE delivery_attempts ADD COLUMN peak_memory_bytes BIGINT;
ALTER TABLE delivery_attempts ADD COLUMN http_requests BIGINT;
