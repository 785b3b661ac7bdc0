"""An in-process httpx transport to a simulator, for fast tests without sockets.

``httpx.ASGITransport`` runs the app in the caller's task. On top of it this
transport makes two socket behaviours visible, as a real connection would:

- :class:`~runner.simulator.asgi.DropConnection` (a dropped connection, or a
  body cut short) becomes ``httpx.RemoteProtocolError``;
- the request's read timeout is enforced, so a ``p_slow`` response surfaces
  as ``httpx.ReadTimeout`` (after the task was created) instead of hanging.

Note that ASGITransport collects the whole body before returning, so a
truncated download fails when the response is opened rather than while it
is streamed; both are ``httpx.TransportError``.
"""

from __future__ import annotations

import anyio
import httpx

from runner.simulator.app import Simulator
from runner.simulator.asgi import DropConnection

__all__ = ["sim_transport"]


class _SimTransport(httpx.AsyncBaseTransport):
    def __init__(self, sim: Simulator) -> None:
        self._inner = httpx.ASGITransport(app=sim)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout") or {}
        read_timeout = timeouts.get("read")
        deadline = float("inf") if read_timeout is None else float(read_timeout)
        try:
            with anyio.move_on_after(deadline) as scope:
                return await self._inner.handle_async_request(request)
        except DropConnection as exc:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a complete response.", request=request
            ) from exc
        if scope.cancelled_caught:
            raise httpx.ReadTimeout(f"simulator did not answer within {deadline} s", request=request)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        await self._inner.aclose()


def sim_transport(sim: Simulator) -> httpx.AsyncBaseTransport:
    """An httpx transport that serves requests from ``sim`` in-process.

    >>> client = httpx.AsyncClient(transport=sim_transport(sim), base_url="http://sim.test")
    """
    return _SimTransport(sim)
