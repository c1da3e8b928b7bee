"""Seeds the server scripts/openapi-check starts: a user with a password,
logged in, so the session routes are exercised too. Prints
"<userId> <authToken>". Standard library only."""

import json
import sys
import urllib.request


def post(base, path, body, headers):
    req = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def main():
    base, admin = sys.argv[1], sys.argv[2]
    password = "openapi-check-password"
    post(
        base,
        "/api/v1/users.create",
        {"username": "openapi", "password": password, "email": "openapi@example.com"},
        {"Authorization": f"Bearer {admin}"},
    )
    login = post(base, "/api/v1/login", {"user": "openapi", "password": password}, {})
    data = login["data"]
    print(data["userId"], data["authToken"])


if __name__ == "__main__":
    main()
