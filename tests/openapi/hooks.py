"""schemathesis hooks for scripts/openapi-check: plugin uploads are raw
bytes (`application/wasm`); send them as the built-in octet-stream
serializer would."""

import schemathesis

schemathesis.serializer.alias("application/wasm", "application/octet-stream")
