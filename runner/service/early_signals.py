"""Stop signals before the engine runs: one unwinds cleanly (no paid request is on the wire: a submit is the engine's).

Apart from :mod:`runner.service.signals` (which imports the engine and anyio) so that every command
can install these at start-up without importing them (start-up time: issue 14).
"""

from __future__ import annotations

import signal

from runner._entry import EarlyStop, ignored_at_start, stop_signals

__all__ = ["Interrupted", "defer_early_signals", "early_handlers_installed", "install_early_signal_handlers",
           "pending_signal"]


class Interrupted(EarlyStop):
    """A signal arrived outside the engine: no paid request was on the wire (a look-up or a download may have been,
    cut at no cost: :mod:`runner.service.stoppable`)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


_interrupting = False
_pending: int | None = None  # a stop signal remembered inside the event loop (defer_early_signals)


def _raise_interrupted(signum: int, frame: object) -> None:
    global _interrupting
    if _interrupting:  # already unwinding (a closing terminal may send SIGHUP twice): let it finish
        return
    _interrupting = True
    raise Interrupted(signum)


def install_early_signal_handlers() -> None:
    """Until the engine installs its own, a stop signal unwinds cleanly (open transactions roll back).

    The stop signals are SIGINT, SIGTERM, SIGHUP and SIGQUIT (see :func:`runner._entry.stop_signals`);
    one the process was started with ignored (``nohup``) is put back to ignored.
    """
    global _interrupting, _pending
    _interrupting, _pending = False, None
    for sig in stop_signals():
        signal.signal(sig, _raise_interrupted)
    for sig in ignored_at_start():
        signal.signal(sig, signal.SIG_IGN)


def early_handlers_installed() -> bool:
    """Whether this process's stop signals unwind as :func:`install_early_signal_handlers` set them (the CLI's)."""
    return any(signal.getsignal(sig) is _raise_interrupted for sig in stop_signals())


def _remember(signum: int, frame: object) -> None:
    global _pending
    if _pending is None:
        _pending = signum


def defer_early_signals() -> None:
    """Inside the event loop, until the engine's own handlers: a stop signal is remembered, not raised — raised,
    it lands in whatever runs then, and a loop callback or an HTTP parser's callback swallows it (the bench's
    stop sweep saw a SIGQUIT at start-up ignored, the whole batch then paid for). The run asks
    :func:`pending_signal` before the engine starts, and the engine's signal watcher at its start."""
    for sig in stop_signals():
        if signal.getsignal(sig) is not signal.SIG_IGN:  # one ignored since the start (nohup) stays ignored
            signal.signal(sig, _remember)


def pending_signal() -> int | None:
    """The stop signal :func:`defer_early_signals` remembered, if any."""
    return _pending
