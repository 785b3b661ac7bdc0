"""The bytes of a submit's JSON body that carries local files inline: :func:`inline_body`, :class:`InlineBody`.

httpx's ``json=`` sends ``json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)`` encoded
as UTF-8. For an image sent inline as a data URI that meant the file's bytes, their base64, the base64 as text,
the URI, the JSON text and its encoding, then the transport's copies: about five times the image held by each
submit (``bench/inline_memory.py``: 47 MiB for a 10 MB image, unbounded with the concurrency).

Here the body's JSON text is made with each :class:`~runner.endpoints.media.Inline` replaced by a marker (a
random token: no text of the body can be taken for it), so the size of the bytes is known before any file is
read (:attr:`InlineBody.size`), and :meth:`InlineBody.encode` fills one buffer of exactly that size: the text
around the markers, and the base64 of each file written straight from the pieces it is read in. The bytes are
exactly those ``json=`` sends for the body with each data URI in full: a data URI's JSON text is its prefix's
(``"data:<mime>;base64,``) then the base64 as is, since the encoder escapes character by character and escapes
no base64 character (``tests/unit/test_client_body.py`` compares them).

The client sends those bytes through :func:`sent_once`: httpx keeps each answer in a reference cycle (the
response and its stream) with its request until the cyclic garbage collector runs, so a body the request held
(``content=bytes``) outlived its POST, for as long as the collector left it (a run held 11 bodies of 13 MB where
5 were on the wire). The request holds the generator, which lets the bytes go once it has handed out the last
piece (``tests/integration/test_inline_loopback.py``).
"""

from __future__ import annotations

import binascii
import io
import json
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

from runner.endpoints.media import Inline, InputChanged

__all__ = ["PIECE", "InlineBody", "inline_body", "sent_once"]

PIECE = 256 * 1024  # bytes of an encoded body handed to the transport at a time


def _dumps(body: Any) -> str:
    """The JSON text httpx's ``json=`` makes of ``body``."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _walk(value: Any, swap: Callable[[Inline], Any]) -> Any:
    """``value`` with each Inline in it (in the order the JSON encoder meets them) replaced by ``swap``'s answer."""
    if isinstance(value, Inline):
        return swap(value)
    if isinstance(value, dict):
        return {key: _walk(item, swap) for key, item in value.items()}
    if isinstance(value, list):
        return [_walk(item, swap) for item in value]
    return value


def inline_body(body: dict[str, Any]) -> InlineBody | dict[str, Any]:
    """``body`` as an :class:`InlineBody` when it carries an :class:`Inline`, else ``body`` itself.

    A body that JSON cannot encode (a NaN, an object) is returned as a plain dict with each data URI in full:
    the client refuses it unsent, as any body it cannot encode. Nothing here reads a file but that fallback."""
    inlines: list[Inline] = []
    token = f"inline-{secrets.token_hex(16)}-"

    def mark(inline: Inline) -> str:
        inlines.append(inline)
        return f"{token}{len(inlines) - 1}"

    skeleton = _walk(body, mark)
    if not inlines:
        return body
    try:
        rest = _dumps(skeleton)
        texts: list[bytes] = []
        for index, inline in enumerate(inlines):
            before, found, rest = rest.partition(f'"{token}{index}"')
            if not found:  # cannot happen: the encoder meets the values in the order marked
                raise ValueError("an inline input's marker is missing from the body's JSON")
            texts.append((before + _dumps(inline.prefix)[:-1]).encode("utf-8"))  # up to the base64
            rest = '"' + rest  # the URI's closing quote
        texts.append(rest.encode("utf-8"))
    except (TypeError, ValueError):
        resolved: dict[str, Any] = _walk(body, Inline.text)
        return resolved
    return InlineBody(texts, inlines)


class InlineBody:
    """A body whose inline files are not read yet; :attr:`size` is the length of its bytes (see the module)."""

    __slots__ = ("_inlines", "_texts", "size")

    def __init__(self, texts: list[bytes], inlines: list[Inline]) -> None:
        self._texts = texts  # encoded JSON text: before each inline file's base64, and after the last
        self._inlines = inlines
        self.size = sum(map(len, texts)) + sum(4 * ((inline.size + 2) // 3) for inline in inlines)

    def encode(self) -> bytes:
        """The body's bytes, reading each file (``InputChanged`` when one is not as planned: nothing is built).

        One allocation of :attr:`size` bytes: a BytesIO made on a bytes object it alone holds writes into it in
        place and ``getvalue()`` returns that object (CPython's BytesIO; elsewhere it costs one copy more)."""
        out = io.BytesIO(bytes(self.size))
        write = out.write
        for text, inline in zip(self._texts, self._inlines, strict=False):
            write(text)
            rest, read = b"", 0
            for piece in inline.pieces():
                read += len(piece)
                if rest:
                    piece = rest + piece
                cut = len(piece) - len(piece) % 3  # whole base64 quanta; the bytes left go with the next piece
                write(binascii.b2a_base64(memoryview(piece)[:cut], newline=False))
                rest = piece[cut:]
            write(binascii.b2a_base64(rest, newline=False))  # the last quantum and its padding (or nothing)
            if read != inline.size:
                raise InputChanged(f"input {inline.file} is {read} bytes, not the {inline.size} planned; nothing was"
                                   " sent: run again to plan the new file as a new job")
        write(self._texts[-1])
        if out.tell() != self.size:  # cannot happen when each file is its planned size
            raise InputChanged(f"the body's bytes are {out.tell()}, not the {self.size} planned; nothing was sent")
        return out.getvalue()


async def sent_once(body: bytes) -> AsyncIterator[bytes]:
    """``body`` in pieces of :data:`PIECE` for a request's ``content=``; the bytes are let go after the last one."""
    for start in range(0, len(body), PIECE):
        yield body[start:start + PIECE]
