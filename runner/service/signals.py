"""Stop signals around a run: before the engine, one unwinds cleanly; while it runs, the first stops
gracefully and a second at once.

Only a caller that owns the process asks for these (the CLI does; a library user passes
``handle_signals=True`` to :func:`runner.service.run` if it wants them).
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator

import anyio
import anyio.abc

from runner._entry import NEVER_AT_ONCE, stop_signals
from runner.engine import Engine, StopReason
from runner.reporting.logs import flush_repeats
from runner.service.early_signals import Interrupted, install_early_signal_handlers, pending_signal
from runner.service.outcome import EXIT_FORCED, Notice, Notify

__all__ = ["Interrupted", "install_early_signal_handlers", "watch_signals"]


async def watch_signals(engine: Engine, notify: Notify, *,
                        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """The first stop signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) stops gracefully; a second stops at once
    (exit 130, as a shell reports Ctrl-C).

    SIGHUP never stops at once: a closing terminal, or a shell passing its hang-up on to its jobs,
    may send it more than once. (Writes to a stderr that is gone are dropped: see runner.cli.output.)
    """
    try:
        with anyio.open_signal_receiver(*stop_signals()) as signals:
            task_status.started()
            first = True
            early = pending_signal()  # remembered before this receiver was open (defer_early_signals)
            async for signum in _after(early, signals):
                name = signal.Signals(signum).name
                if first:  # not engine._stopping: a budget, fatal or --max-runtime stop is not a signal
                    first = False
                    notify(Notice(f"\n{name}: finishing the submits on the wire, then stopping (again to stop at once)",
                                  "notice", fields={"event": "signal", "signal": name, "action": "stopping"}))
                    engine.request_stop(StopReason.SIGNAL)
                elif signum in NEVER_AT_ONCE:
                    notify(Notice(f"{name} again: still finishing the submits on the wire", "notice",
                                  fields={"event": "signal", "signal": name, "action": "still stopping"}))
                else:
                    notify(Notice(f"{name} again: stopping now (exit {EXIT_FORCED}); a submit cut off on the wire is"
                                  " held as in doubt by the next run", "notice",
                                  fields={"event": "signal", "signal": name, "action": "stopped at once",
                                          "exit_code": EXIT_FORCED}))
                    # Like kill -9: SQLite keeps every committed transition; a POST on the wire is
                    # found in `submitting` next time and becomes in_doubt.
                    flush_repeats()
                    os._exit(EXIT_FORCED)
    finally:
        # Closing the receiver put the default actions back (SIGHUP and SIGTERM kill, SIGQUIT dumps
        # core) while the event loop still winds down. The work is over by then: a late stop signal
        # is ignored until the early handlers are back, right after the loop returns.
        for sig in stop_signals():
            signal.signal(sig, signal.SIG_IGN)


async def _after(early: int | None, signals: AsyncIterator[int]) -> AsyncIterator[int]:
    """The signal remembered before the receiver opened, if any, then the receiver's."""
    if early is not None:
        yield early
    async for signum in signals:
        yield signum
