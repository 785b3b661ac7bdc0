"""A command's free requests — a task look-up (`runner adopt KEY TASK`, `retry --lost`), a download (`runner verify`)
— stopped at once by a stop signal.

Outside the engine a stop signal raises :class:`~runner.service.early_signals.Interrupted` where it lands; inside an
event loop it lands in a loop or HTTP parser callback that swallows it, so Ctrl-C on `runner adopt` while the provider
held its answer did nothing until the read timeout (two minutes), and a second Ctrl-C was ignored as the first's
unwinding. Here the signal is taken by the loop's own receiver, which cancels the work and raises
:class:`Interrupted` once the loop is left. No paid request is made this way (a submit is the engine's alone), so
nothing is lost: what was recorded stays, and the same command again finishes.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.abc

from runner._entry import stop_signals
from runner.service.early_signals import (
    Interrupted,
    defer_early_signals,
    early_handlers_installed,
    install_early_signal_handlers,
    pending_signal,
)

__all__ = ["run_stoppable"]

T = TypeVar("T")


def run_stoppable(work: Callable[[], Awaitable[T]]) -> T:
    """``anyio.run(work)``, cut at once by a stop signal (:class:`Interrupted`) where the CLI's early handlers are in
    place; as it is elsewhere (a library's caller owns its signals)."""
    if not early_handlers_installed():
        return anyio.run(work)
    stopped: list[int] = []
    defer_early_signals()
    try:
        done = anyio.run(_cut_by_a_signal, work, stopped)
    finally:
        install_early_signal_handlers()
    if stopped or done is None:
        raise Interrupted(stopped[0] if stopped else signal.SIGINT)
    return done[0]


async def _cut_by_a_signal(work: Callable[[], Awaitable[T]], stopped: list[int]) -> tuple[T] | None:
    """``(work's result,)``; None when the watcher cancelled it. Its error is raised as it is (a task group would
    wrap it in an ExceptionGroup, which no caller's ``except RunnerError`` catches)."""
    done: tuple[T] | None = None
    error: Exception | None = None
    async with anyio.create_task_group() as group:
        await group.start(_watch, group.cancel_scope, stopped)
        try:
            done = (await work(),)
        except Exception as exc:  # the cancellation is not one: it ends the group
            error = exc
        group.cancel_scope.cancel()  # the watcher's
    if error is not None:
        raise error
    return done


async def _watch(scope: anyio.CancelScope, stopped: list[int], *,
                 task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    try:
        with anyio.open_signal_receiver(*stop_signals()) as signals:
            task_status.started()
            early = pending_signal()  # one that came before the receiver opened (defer_early_signals)
            if early is None:
                async for signum in signals:
                    early = signum
                    break
            if early is not None:
                stopped.append(early)
                scope.cancel()
    finally:  # the default actions came back as the receiver closed: ignored until the early handlers are back
        for sig in stop_signals():
            signal.signal(sig, signal.SIG_IGN)
