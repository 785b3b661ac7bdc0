"""A connect that fails because this process has no file descriptor left (EMFILE) is no unreachable provider.

Limits sweep, 2026-12-05: under ``ulimit -n 64`` at ``--concurrency 200`` the run stopped with "the provider at … is
unreachable (4 connections failed: ConnectError); check the network, or --base-url", exit 5: the network was fine,
the process's open-file limit was not."""

from __future__ import annotations

import errno
import random

import httpx

from runner.client import SubmitOutcome
from runner.client.submit import classify_exception
from runner.engine.policy import Policy
from runner.engine.ratelimit import RateLimiter
from runner.engine.refusals import Refusals
from runner.errors import DiskError, ProviderUnreachable
from runner.service import EXIT_LOCAL, exit_code_for


def _connect_failed(errno_: int) -> httpx.ConnectError:
    try:
        try:
            raise OSError(errno_, "the socket could not be made")
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as exc:
        return exc


def _after_refusals(reason_errno: int) -> object:
    refusals = Refusals(Policy(), RateLimiter(None), random.Random(0), lambda: 0.0, "https://api.novita.ai")
    result = classify_exception(_connect_failed(reason_errno))
    assert result.outcome is SubmitOutcome.REFUSED and result.retryable  # nothing was sent either way
    fatal = None
    for _ in range(Policy().unreachable_after):
        fatal = refusals.again(result).fatal
    return fatal


def test_connects_failing_for_want_of_a_descriptor_stop_the_run_naming_the_open_file_limit() -> None:
    """EMFILE on each connect: the run stops with exit 6 and the `ulimit -n` to raise, not 'check the network'."""
    fatal = _after_refusals(errno.EMFILE)
    assert isinstance(fatal, DiskError) and exit_code_for(fatal) == EXIT_LOCAL
    assert "ulimit -n" in str(fatal) and "network" not in str(fatal), fatal


def test_connects_refused_by_the_network_still_say_the_provider_is_unreachable() -> None:
    """ECONNREFUSED: the provider is unreachable (exit 5), as before."""
    assert isinstance(_after_refusals(errno.ECONNREFUSED), ProviderUnreachable)
