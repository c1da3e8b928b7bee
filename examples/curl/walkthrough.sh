#!/usr/bin/env bash
# A walk through postern's REST API with curl. Start the server first:
#   cargo run --release -- serve -c examples/postern.toml
# and export the admin token it printed:  export TOKEN=pat_…
# Mail goes to [smtp] in the config (127.0.0.1:2525 in the example); point it
# at a real server or run a local catcher (e.g. `python3 -m aiosmtpd -n -l 127.0.0.1:2525`).
set -euo pipefail
BASE=${BASE:-http://127.0.0.1:8080}
: "${TOKEN:?export TOKEN=<admin token printed at first start>}"
J='Content-Type: application/json'
A="Authorization: Bearer $TOKEN"
say() { printf '\n== %s\n' "$*"; }

say "channels of the default tenant"
curl -s -H "$A" "$BASE/api/v1/channels"; echo

say "a user with a verified email, email 2FA on (admin enrolment)"
curl -s -H "$A" -H "$J" -d '{"username":"alice","password":"correct horse","email":"alice@example.com","emailVerified":true}' "$BASE/api/v1/users.create"; echo
curl -s -H "$A" -H "$J" -d '{"username":"alice","method":"email"}' "$BASE/api/v1/users.setTwoFactor"; echo

say "login without a code: 401 totp-required, and a code is mailed"
curl -s -H "$J" -d '{"user":"alice","password":"correct horse"}' "$BASE/api/v1/login"; echo

read -r -p "code from the mail: " CODE
say "login with the code"
LOGIN=$(curl -s -H "$J" -H "x-2fa-code: $CODE" -H "x-2fa-method: email" -d '{"user":"alice","password":"correct horse"}' "$BASE/api/v1/login")
echo "$LOGIN"
UID_=$(printf '%s' "$LOGIN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["userId"])')
TOK=$(printf '%s' "$LOGIN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["authToken"])')

say "a protected call without a code: 400 totp-required (a live code is not re-sent)"
curl -s -H "$J" -H "X-User-Id: $UID_" -H "X-Auth-Token: $TOK" -d '{"data":{"name":"Alice A."}}' "$BASE/api/v1/users.updateOwnBasicInfo"; echo

say "Verify API (server to server): send, then check"
curl -s -H "$A" -H "$J" -d '{"to":"bob@example.com","channel":"email"}' "$BASE/api/v1/verifications"; echo
echo "check with: curl -s -H \"$A\" -H '$J' -d '{\"id\":\"ver_…\",\"code\":\"123456\"}' $BASE/api/v1/verifications/check"

say "deliveries (never the code) and the audit trail"
curl -s -H "$A" "$BASE/api/v1/deliveries?limit=3"; echo
curl -s -H "$A" "$BASE/api/v1/audit?limit=5"; echo

say "a tenant with its own channel"
KEY=$(curl -s -H "$A" -H "$J" -d '{"name":"acme"}' "$BASE/admin/v1/tenants" | python3 -c 'import json,sys; print(json.load(sys.stdin)["apiKey"])')
curl -s -H "Authorization: Bearer $KEY" -H "$J" -X PUT \
  -d '{"kind":"url","config":{"url":"https://hooks.example.com/2fa"},"secrets":{"signing_secret":"s3cret"},"sendToType":"email"}' \
  "$BASE/t/acme/api/v1/channels/webhook"; echo
curl -s -H "Authorization: Bearer $KEY" "$BASE/t/acme/api/v1/channels/webhook"; echo
