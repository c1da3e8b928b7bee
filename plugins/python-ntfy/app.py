"""postern plugin in Python: ntfy push notification (ntfy.sh or self-hosted).

Request (docs: https://docs.ntfy.sh/publish/):

    POST {api_base}/{topic}
    Content-Type: text/plain; charset=utf-8
    Title: <title>        Priority: <priority>        Tags: key
    Authorization: Bearer <access_token>   (only when configured)

    <message.text>

200 with JSON {"id": ...} -> delivered (provider-id = id); 401/403 ->
misconfigured; 408/429/5xx -> unavailable; other status -> rejected.
Send-to: the topic name, [-_A-Za-z0-9]{1,64}.
"""

import json
import re

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, log
from wit_world.imports import postern_plugin_types as t

import wasi_http

TOPIC = re.compile(r"[-_A-Za-z0-9]{1,64}")
PRIORITIES = {"min", "low", "default", "high", "urgent", "1", "2", "3", "4", "5"}


def cfg(key, default=None):
    value = config.get(key)
    return value if value else default


def key(name, secret, description):
    return t.ConfigKey(name=name, required=False, secret=secret, description=description)


def header_text(s):
    """Header values must be ASCII: RFC 2047 encode anything else."""
    if s.isascii():
        return s
    import base64

    return "=?UTF-8?B?" + base64.b64encode(s.encode()).decode() + "?="


def classify(status, body):
    detail = body[:200].decode("utf-8", "replace")
    try:
        detail = json.loads(body).get("error", detail)
    except (ValueError, AttributeError):
        pass
    if status in (401, 403):
        return t.DeliveryError_Misconfigured(f"ntfy refused access to the topic (HTTP {status}): {detail}")
    if status in (408, 429) or status >= 500:
        return t.DeliveryError_Unavailable(f"HTTP {status}: {detail}")
    return t.DeliveryError_Rejected(f"HTTP {status}: {detail}")


class WitWorld(wit_world.WitWorld):
    def describe(self):
        return t.PluginInfo(
            name="ntfy-python",
            version="0.1.0",
            description="Pushes the code to an ntfy topic (Python)",
            config_keys=[
                key("api_base", False, "ntfy server URL (default https://ntfy.sh)"),
                key("title", False, 'Notification title (default "Verification code")'),
                key("priority", False, "min, low, default, high or urgent (default high)"),
                key("access_token", True, "Access token for protected topics"),
            ],
        )

    def validate_recipient(self, send_to):
        if not TOPIC.fullmatch(send_to):
            raise Err("expected an ntfy topic name: 1 to 64 letters, digits, - or _")

    def deliver(self, message):
        if not TOPIC.fullmatch(message.send_to):
            raise Err(t.DeliveryError_InvalidRecipient("not an ntfy topic name"))
        priority = cfg("priority", "high")
        if priority not in PRIORITIES:
            raise Err(t.DeliveryError_Misconfigured("config key `priority` must be min, low, default, high, urgent or 1..5"))
        headers = [
            ("content-type", "text/plain; charset=utf-8"),
            ("title", header_text(cfg("title", "Verification code"))),
            ("priority", priority),
            ("tags", "key"),
        ]
        token = cfg("access_token")
        if token:
            headers.append(("authorization", "Bearer " + token))
        url = cfg("api_base", "https://ntfy.sh").rstrip("/") + "/" + message.send_to
        try:
            status, body = wasi_http.send("POST", url, headers, message.text.encode())
        except wasi_http.HttpError as e:
            raise Err(t.DeliveryError_Unavailable(str(e))) from None
        log.log(log.Level.INFO, f"ntfy answered HTTP {status}")
        if not 200 <= status < 300:
            raise Err(classify(status, body))
        try:
            provider_id = json.loads(body).get("id")
        except (ValueError, AttributeError):
            provider_id = None
        return t.Receipt(provider_id=provider_id)
