"""Answers a hostile server gives, for tests of the HTTP client: bodies that never end.

It lives in the package beside :mod:`runner.testing` so that unit and integration tests share it. Nothing
here is used by the runner itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx

__all__ = ["Trickle"]


class Trickle(httpx.AsyncByteStream):
    """A body that sends a byte every ``every`` seconds and never ends: no single read is slow, the whole never
    arrives (httpx's timeout of each read never trips)."""

    def __init__(self, every: float = 0.01) -> None:
        self.every = every

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            yield b" "
            await anyio.sleep(self.every)
