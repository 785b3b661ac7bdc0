"""The submit's read timeout counted in active time (:class:`ActiveDeadline`): time paused does not count."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import httpx

__all__ = ["PAUSE_ALLOWANCE_S", "PAUSE_TICK_S", "PAUSE_TICK_WEIGHT", "UPLOAD_FLOOR_BPS", "ActiveDeadline"]

PAUSE_TICK_S = 0.25  # the submit deadline's watcher wakes this often
PAUSE_TICK_WEIGHT = 2.0  # one tick counts at most this many nominal lengths: a pause counts as almost nothing
PAUSE_ALLOWANCE_S = 24 * 3600.0  # what the POST's own read/write timeouts get on top, to read an answer after a pause
UPLOAD_FLOOR_BPS = 64 * 1024  # the slowest uplink a body's upload is given time for (512 kbit/s), on top of the read


class ActiveDeadline:
    """The submit's read timeout counted in *active* time: time this process spent paused does not count.

    A process stopped (SIGSTOP, Ctrl-Z, a frozen VM) longer than the read timeout would otherwise find,
    on waking, both its socket readable and its timer expired — and the timer wins: an answered POST
    becomes in doubt. Here httpx's own read and write timeouts are lifted by ``PAUSE_ALLOWANCE_S`` and a
    watcher advances active time in ticks, each counted as at most ``PAUSE_TICK_WEIGHT`` of its nominal
    length; it cancels the POST when active time passes the read timeout. The watcher is an event-loop
    timer on asyncio (the runner's backend: a task and its task group cost each submit ~0.1 ms of CPU), a
    task on another backend. Active time starts when the request headers start going out (an httpcore
    trace event; from the start when the transport traces nothing), so connect and pool waits keep their
    own httpx timeouts and stay "nothing was sent". While the body goes out, the deadline is longer by the
    body's size at :data:`UPLOAD_FLOOR_BPS` (a 13 MB body of inline images takes minutes on a slow uplink); once
    the body is handed to the operating system (``send_request_body.complete``), the read timeout counts from
    zero: it is the wait for the answer (and for what the kernel's send buffer still holds, a few seconds at most
    on a slow uplink). A cancel by this deadline is reported as an ``httpx.ReadTimeout``: ambiguous, exactly like before.
    """

    def __init__(self, timeout: httpx.Timeout, limit: float, tick: float) -> None:
        self.limit = limit
        self.tick = tick
        self.request_timeout = httpx.Timeout(
            connect=timeout.connect, pool=timeout.pool, read=limit + PAUSE_ALLOWANCE_S,
            write=None if timeout.write is None else timeout.write + PAUSE_ALLOWANCE_S,
        )
        self.active = 0.0
        self.allowance = 0.0  # the upload's time, until the body is sent
        self.counting = True  # until the transport says it traces: then from the request's first byte
        self.sent = False
        self.expired = False
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def for_client(cls, timeout: httpx.Timeout, *, tick: float | None) -> ActiveDeadline | None:
        if tick is None or timeout.read is None:
            return None
        return cls(timeout, timeout.read, tick)

    async def trace(self, name: str, info: dict[str, Any]) -> None:
        if name.endswith("send_request_headers.started"):
            self.counting, self.active, self.sent = True, 0.0, True
        elif name.endswith("send_request_body.complete"):  # all sent: the wait for the answer starts now
            self.active, self.allowance = 0.0, 0.0
        elif not self.sent and name.startswith("connection."):
            self.counting = False  # connecting: httpx's connect timeout covers it, and nothing was sent yet

    def _step(self, now: float) -> bool:
        """One tick of the watcher at ``now``: True when active time has run out."""
        step, self._last = min(now - self._last, self.tick * PAUSE_TICK_WEIGHT), now
        if self.counting:
            self.active += step
        self.expired = self.active >= self.limit + self.allowance
        return self.expired

    def _on_tick(self, loop: asyncio.AbstractEventLoop, scope: anyio.CancelScope) -> None:
        if self._step(loop.time()):
            scope.cancel()
        else:
            self._timer = loop.call_later(self.tick, self._on_tick, loop, scope)

    async def _watch(self, scope: anyio.CancelScope) -> None:
        self._last = anyio.current_time()
        while True:
            await anyio.sleep(self.tick)
            if self._step(anyio.current_time()):
                scope.cancel()
                return

    async def send(self, http: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
        response: httpx.Response | None = None
        try:  # the body's length: json= and a body of bytes sent once (runner.client.body) both say it
            self.allowance = int(request.headers.get("content-length") or 0) / UPLOAD_FLOOR_BPS
        except ValueError:
            self.allowance = 0.0
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (trio): the watcher is a task
            loop = None
        if loop is not None:  # the runner's backend: the watcher is an event-loop timer, not a task and its group
            with anyio.CancelScope() as scope:
                self._last = loop.time()
                self._timer = loop.call_later(self.tick, self._on_tick, loop, scope)
                try:
                    response = await http.send(request, follow_redirects=False)
                finally:
                    if self._timer is not None:
                        self._timer.cancel()
        else:
            error: Exception | None = None
            async with anyio.create_task_group() as group:
                group.start_soon(self._watch, group.cancel_scope)
                try:
                    response = await http.send(request, follow_redirects=False)
                except Exception as exc:  # raised below as itself, not wrapped in a group
                    error = exc
                finally:
                    group.cancel_scope.cancel()
            if error is not None:
                raise error
        if response is None:  # cut off by the deadline; an answer read all the same is kept, never thrown away
            raise httpx.ReadTimeout(
                f"no answer within {self.limit:g} s of active time (time paused not counted)", request=request
            )
        return response
