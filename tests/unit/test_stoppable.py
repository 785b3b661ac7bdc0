"""runner.service.stoppable: a command's free requests (adopt's look-up, verify's downloads) cut at once by a stop
signal, their errors raised as they are, the CLI's early handlers back afterwards."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import anyio
import pytest

from runner._entry import stop_signals
from runner.errors import AuthError
from runner.service.early_signals import Interrupted, early_handlers_installed, install_early_signal_handlers
from runner.service.stoppable import run_stoppable


@pytest.fixture
def early_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in stop_signals()}
    install_early_signal_handlers()
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_an_error_of_the_work_is_raised_as_it_is(early_handlers: None) -> None:
    """Raised inside the task group that watches the signals, a provider's error (a wrong key) came out as an
    ExceptionGroup, which the CLI's `except RunnerError` does not catch: a traceback instead of its line."""
    async def refused() -> int:
        raise AuthError("the provider refused the API key")

    with pytest.raises(AuthError, match="refused the API key"):
        run_stoppable(refused)
    assert early_handlers_installed()


def test_a_stop_signal_cuts_the_work_at_once_and_the_early_handlers_come_back(early_handlers: None) -> None:
    reached: list[str] = []

    async def waits_for_an_answer() -> int:
        os.kill(os.getpid(), signal.SIGTERM)  # the operator's stop, while the request waits
        await anyio.sleep_forever()
        reached.append("after")  # never: the signal cancels the wait
        return 1

    with pytest.raises(Interrupted) as stopped:
        run_stoppable(waits_for_an_answer)
    assert stopped.value.signum == signal.SIGTERM and reached == []
    assert early_handlers_installed()


def test_the_result_comes_back_and_without_the_clis_handlers_it_is_a_plain_run() -> None:
    async def answer() -> int:
        return 7

    saved = {sig: signal.getsignal(sig) for sig in stop_signals()}
    try:
        for sig in saved:  # a library's caller: its own handlers (here the defaults), left alone
            signal.signal(sig, signal.SIG_DFL)
        assert not early_handlers_installed() and run_stoppable(answer) == 7
        assert all(signal.getsignal(sig) is signal.SIG_DFL for sig in saved)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
