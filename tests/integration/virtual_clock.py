"""Virtual time for engine tests: trio's MockClock, and worker threads it waits for.

``MockClock(autojump_threshold=0)`` jumps to the next deadline whenever every task is blocked.
A task waiting on a worker thread (the download's commit: write, fsync, rename) is blocked too, so
the clock would jump while the disk works: a test's deadline could fire while a file is being
saved, and each download would add a poll interval to the run's virtual time.
:func:`busy_while_threads_run` wraps ``anyio.to_thread.run_sync`` so that a task keeps the run loop
busy (a checkpoint after another) while the thread works: time stands still until it is done, as if
the disk took no time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import pytest
from trio.testing import MockClock

__all__ = ["busy_while_threads_run", "virtual_clock"]


def virtual_clock() -> MockClock:
    """A clock that jumps to the next deadline as soon as every task is blocked."""
    return MockClock(autojump_threshold=0)


def busy_while_threads_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``anyio.to_thread.run_sync`` keep the event loop busy until its thread is done."""
    original: Callable[..., Awaitable[Any]] = anyio.to_thread.run_sync

    async def run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        done = anyio.Event()

        async def keep_busy() -> None:
            while not done.is_set():
                await anyio.lowlevel.checkpoint()  # always runnable: the clock never sees the loop idle

        result: Any = None
        error: Exception | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(keep_busy)
            try:
                result = await original(func, *args, **kwargs)
            except Exception as exc:  # raised as itself below, not wrapped in the task group's ExceptionGroup
                error = exc
            finally:
                done.set()
        if error is not None:
            raise error
        return result

    monkeypatch.setattr(anyio.to_thread, "run_sync", run_sync)
