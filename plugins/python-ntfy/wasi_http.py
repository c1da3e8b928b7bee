"""Blocking HTTP/1.1 over `wasi:http/outgoing-handler` for a plugin export.

The exports of the plugin world are synchronous, so this waits on each
pollable instead of running an event loop. Every handle is closed child
first (stream, then body), as the component model requires.
"""

from urllib.parse import urlsplit

from componentize_py_types import Err, Ok
from wit_world.imports import outgoing_handler, streams
from wit_world.imports import wasi_http_types as h

CHUNK = 4096
MAX_BODY = 1 << 20


class HttpError(Exception):
    """A transport failure: the wasi:http error code, never the URL."""


def _method(name):
    return {"GET": h.Method_Get(), "POST": h.Method_Post(), "PUT": h.Method_Put()}[name]


def _request(method, url, headers):
    parts = urlsplit(url)
    fields = h.Fields.from_list([(k.lower(), v.encode()) for k, v in headers])
    req = h.OutgoingRequest(fields)
    req.set_method(_method(method))
    req.set_scheme(h.Scheme_Https() if parts.scheme == "https" else h.Scheme_Http())
    req.set_authority(parts.netloc)
    path = parts.path or "/"
    req.set_path_with_query(path + ("?" + parts.query if parts.query else ""))
    return req


def _write_body(body, data):
    with body.write() as out:
        for i in range(0, len(data), CHUNK):
            out.blocking_write_and_flush(data[i : i + CHUNK])
    h.OutgoingBody.finish(body, None)


def _read_body(resp):
    incoming = resp.consume()
    data = bytearray()
    with incoming.stream() as stream:
        while len(data) < MAX_BODY:
            try:
                data += stream.blocking_read(16384)
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break
                raise HttpError("reading the response failed") from None
    h.IncomingBody.finish(incoming)
    return bytes(data)


def send(method, url, headers, data=b""):
    """Sends one request; returns (status, body bytes) or raises HttpError."""
    if data:
        headers = list(headers) + [("content-length", str(len(data)))]
    req = _request(method, url, headers)
    body = req.body()
    try:
        future = outgoing_handler.handle(req, None)
    except Err as e:
        raise HttpError(f"HTTP request failed: {type(e.value).__name__}") from None
    _write_body(body, data)
    with future:
        while (answer := future.get()) is None:
            with future.subscribe() as ready:
                ready.block()
    if isinstance(answer, Err) or isinstance(answer.value, Err):
        inner = answer.value if isinstance(answer, Err) else answer.value.value
        name = type(inner).__name__.replace("ErrorCode_", "")
        raise HttpError(f"HTTP request failed: {name}")
    with answer.value.value as resp:
        return resp.status(), _read_body(resp)
