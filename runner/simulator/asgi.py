"""ASGI plumbing of the simulator: requests in, responses out, and dropped connections.

The app signals a connection fault by raising :class:`DropConnection`, either
before it starts a response (the client sees the connection close with no
bytes) or part-way through a body (the client sees a truncated body after a
full Content-Length). Our own server (``runner.simulator.server``) closes the
socket; the in-process transport (``runner.simulator.transport``) raises
``httpx.RemoteProtocolError``, as a real socket would surface it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "MAX_BODY_BYTES",
    "DropConnection",
    "Receive",
    "Request",
    "Response",
    "Scope",
    "Send",
    "envelope",
    "html_page",
    "json_response",
    "xml_error",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Two inline images of up to 10 MB each (image, end_image) are ~27 MB of base64 data: URIs.
MAX_BODY_BYTES = 32 * 1024 * 1024


class DropConnection(Exception):
    """The simulator closes the connection here, without (the rest of) a response."""


class BodyTooLarge(Exception):
    """The request body is larger than MAX_BODY_BYTES."""


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request, body read in full."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    base_url: str

    @classmethod
    async def read(cls, scope: Scope, receive: Receive) -> Request:
        """Read the request of ``scope`` (raises BodyTooLarge past MAX_BODY_BYTES)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        headers = {
            bytes(name).decode("latin-1").lower(): bytes(value).decode("latin-1")
            for name, value in scope.get("headers", [])
        }
        query = dict(parse_qsl(bytes(scope.get("query_string", b"")).decode("latin-1"), keep_blank_values=True))
        scheme = scope.get("scheme", "http")
        host = headers.get("host")
        if not host:
            server = scope.get("server") or ("127.0.0.1", 80)
            host = f"{server[0]}:{server[1]}"
        return cls(
            method=scope["method"],
            path=scope["path"],
            query=query,
            headers=headers,
            body=b"".join(chunks),
            base_url=f"{scheme}://{host}",
        )


@dataclass(slots=True)
class Response:
    """A response to send; ``drop_after`` bytes of body are sent before the connection drops."""

    status: int
    content_type: str
    chunks: Iterable[bytes]
    length: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop_after: int | None = None

    async def send(self, send: Send) -> None:
        headers = [
            (b"content-type", self.content_type.encode("latin-1")),
            (b"content-length", str(self.length).encode("latin-1")),
            *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers),
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        sent = 0
        for chunk in self.chunks:
            if self.drop_after is not None and sent + len(chunk) >= self.drop_after:
                part = chunk[: self.drop_after - sent]
                if part:
                    await send({"type": "http.response.body", "body": part, "more_body": True})
                raise DropConnection(f"connection dropped after {self.drop_after} of {self.length} body bytes")
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += len(chunk)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _bytes_response(
    status: int, content_type: str, body: bytes, headers: list[tuple[str, str]] | None = None
) -> Response:
    return Response(status, content_type, [body], len(body), headers or [])


def json_response(status: int, data: Any, *, headers: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return _bytes_response(status, "application/json", body, headers)


def envelope(
    status: int,
    reason: str,
    message: str,
    *,
    metadata: dict[str, Any] | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> Response:
    """The provider's error body ``{code, reason, message, metadata}``."""
    data = {"code": status, "reason": reason, "message": message, "metadata": metadata or {}}
    return json_response(status, data, headers=headers)


_STATUS_TEXT = {
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


def html_page(status: int) -> Response:
    """An nginx-style error page: no JSON envelope, as a gateway in front of the API sends."""
    title = f"{status} {_STATUS_TEXT.get(status, 'Error')}"
    body = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    ).encode()
    return _bytes_response(status, "text/html", body)


def xml_error(status: int, code: str, message: str, *, resource: str) -> Response:
    """An S3-style XML error, as a presigned URL answers."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{resource}</Resource><RequestId>SIM0000000000000</RequestId></Error>"
    ).encode()
    return _bytes_response(status, "application/xml", body)


def raw_response(status: int, content_type: str, body: bytes) -> Response:
    """Any body, as is (used for malformed 200s)."""
    return _bytes_response(status, content_type, body)
