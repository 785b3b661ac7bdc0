"""A connect that fails because this process has no file descriptor left (EMFILE) is no unreachable provider.

Limits sweep, 2026-12-05: under ``ulimit -n 64`` at ``--concurrency 200`` the run stopped with "the provider at … is
unreachable (4 connections failed: ConnectError); check the network, or --base-url", exit 5: the network was fine,
the process's open-file limit was not."""

from __future__ import annotations

import errno
import random

import httpx
import pytest

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


def test_answer_validators_that_cannot_be_built_for_want_of_a_descriptor_stop_the_run_naming_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The answer's validators are built before the POST (runner.client.submit.build_answer_models): an import that
    fails there with EMFILE sends nothing, and four in a row are the open-file limit (exit 6), not 'check the
    network' (exit 5: its reason was 'OSError', taken for a connect that failed)."""
    import anyio

    from runner.client import NovitaClient, novita

    def no_descriptor() -> None:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(novita, "build_answer_models", no_descriptor)
    posts = []

    async def submit() -> object:
        transport = httpx.MockTransport(lambda request: posts.append(request) or httpx.Response(500))
        async with httpx.AsyncClient(transport=transport) as http:
            client = NovitaClient(http, base_url="http://provider.test", api_key="sk-test-fd-0123456789")
            return await client.submit("kling-v3.0-pro-t2v", {"prompt": "a fox"})

    result = anyio.run(submit)
    assert posts == [] and result.outcome is SubmitOutcome.REFUSED and result.retryable  # nothing was sent
    refusals = Refusals(Policy(), RateLimiter(None), random.Random(0), lambda: 0.0, "https://api.novita.ai")
    fatal = None
    for _ in range(Policy().unreachable_after):
        fatal = refusals.again(result).fatal
    assert isinstance(fatal, DiskError) and "ulimit -n" in str(fatal), fatal
