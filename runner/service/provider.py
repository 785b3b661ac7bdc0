"""One ledger, one provider: which provider a ledger was made with, and asking that provider about tasks."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from runner.client import NovitaClient, api_key_from_env, base_url_from_env, make_http_client, provider_identity
from runner.client.names import BASE_URL_ENV
from runner.errors import TaskNotFound, UsageError
from runner.ledger import PROVIDER_MARK, LedgerBackend
from runner.novita_wire import TaskResult

__all__ = ["PROVIDER_META", "SIMULATOR", "check_ledger_provider", "check_provider_kind",
           "look_up_tasks", "provider_for_ledger", "provider_from_env",
           "provider_url"]

SIMULATOR = "simulator"  # what a ledger made with --simulate records (its port changes every run)
PROVIDER_META = "provider"  # the ledger's meta key: SIMULATOR or the provider's base URL
_MARK_KINDS = {SIMULATOR: SIMULATOR, "novita": "novita"}  # the provider mark beside the ledger (older runners)


def check_provider_kind(state_dir: Path, ledger: LedgerBackend, *, simulate: bool, base_url: str,
                        allow_change: bool = False) -> None:
    """One ledger, one provider: its tasks exist only there. Another provider would not find them (it would
    call them lost) and could be paid for them again, so a ledger records the provider it was made with —
    ``simulator`` for --simulate, else the base URL — and refuses another unless ``allow_change``.

    Older ledgers have only the mark file beside them (``simulator`` or ``novita``): it is still read,
    and the base URL is recorded at the first run that uses one.
    """
    current = SIMULATOR if simulate else provider_identity(base_url)
    mark = state_dir / PROVIDER_MARK
    sqlite = getattr(ledger, "path", None) is not None  # the mark file beside it; a database has none
    try:
        recorded = ledger.meta(PROVIDER_META)
        legacy = _MARK_KINDS.get(mark.read_text(encoding="utf-8").strip()) if sqlite and mark.exists() else None
        if recorded is None and legacy == SIMULATOR:
            recorded = SIMULATOR
        elif recorded is None and legacy == "novita" and simulate:
            recorded = "the real API (a ledger made before runner recorded base URLs)"
        if recorded is not None and recorded != current and ledger.has_provider_tasks() and not allow_change:
            raise UsageError(
                f"the ledger {ledger.location} was made with {_describe_provider(recorded)}; this run would use"
                f" {_describe_provider(current)}, which does not know its tasks (it would call them lost, or pay"
                " for them again). Use the same provider, another --state directory, or --allow-provider-change"
                " if it is the same provider at a new address (nothing was sent)"
            )
        if recorded != current:
            ledger.set_meta(PROVIDER_META, current)
        kind = SIMULATOR if simulate else "novita"
        if sqlite and legacy != kind:
            mark.write_text(kind + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot use {mark}: {exc.strerror or exc} (nothing was sent)") from exc


def _describe_provider(identity: str) -> str:
    return "--simulate (the built-in simulator)" if identity == SIMULATOR else identity


def check_ledger_provider(ledger: LedgerBackend, endpoint: str) -> None:
    """Refuse to ask ``endpoint`` about this ledger's tasks when the ledger was made with another provider.

    Its tasks exist only at the provider it records: another one's answer proves nothing about them.
    """
    recorded = ledger.meta(PROVIDER_META)
    current = provider_identity(endpoint)
    if recorded is None or recorded == current:
        return
    if recorded == SIMULATOR:
        raise UsageError(f"the ledger {ledger.location} was made with --simulate: its tasks lived in a simulator that"
                         f" ended with its run, and {current} does not know them (nothing changed)")
    raise UsageError(f"the ledger {ledger.location} was made with {recorded}, and its tasks exist only there; {current}"
                     f" does not know them. Pass --base-url {recorded} (or set NOVITA_BASE_URL) (nothing changed)")


def provider_url(base_url: str | None, environ: Mapping[str, str] | None = None, *,
                 recorded: str | None = None) -> str:
    """The base URL to ask about a ledger's tasks: ``base_url`` (--base-url) > NOVITA_BASE_URL > ``recorded``, the
    base URL the ledger records, when it is one (not ``simulator``) > the default. Needs no key, so a ledger's
    provider is checked (:func:`check_ledger_provider`) before the key is asked for."""
    environ = os.environ if environ is None else environ
    if base_url is None and recorded not in (None, SIMULATOR) and not environ.get(BASE_URL_ENV, "").strip():
        base_url = recorded
    return base_url_from_env(base_url, environ)


def provider_from_env(base_url: str | None, environ: Mapping[str, str] | None = None, *,
                      recorded: str | None = None) -> tuple[str, str]:
    """The base URL (:func:`provider_url`) and the key (NOVITA_API_KEY)."""
    environ = os.environ if environ is None else environ
    return provider_url(base_url, environ, recorded=recorded), api_key_from_env(environ)


def provider_for_ledger(ledger: LedgerBackend, base_url: str | None,
                        environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The base URL and key to ask about ``ledger``'s tasks (``adopt``, ``retry --lost``, ``verify``): the URL by
    :func:`provider_url` from what the ledger records, checked against it (:func:`check_ledger_provider`: a
    simulator's ledger is refused) before the key is read, so a user without one is told what is wrong with the
    provider first."""
    environ = os.environ if environ is None else environ
    endpoint = provider_url(base_url, environ, recorded=ledger.meta(PROVIDER_META))
    check_ledger_provider(ledger, endpoint)
    return endpoint, api_key_from_env(environ)


async def _look_up(base_url: str, api_key: str, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
    found: dict[str, TaskResult | None] = {}
    async with make_http_client() as http:
        client = NovitaClient(http, base_url=base_url, api_key=api_key)
        for task_id in task_ids:
            try:
                found[task_id] = await client.task_result(task_id)
            except TaskNotFound:
                found[task_id] = None
    return found


def look_up_tasks(base_url: str, api_key: str, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
    """One task-result GET per id: its result, or None when the provider answers TASK_NOT_FOUND.

    Other provider errors (a wrong key, the provider unreachable) raise.
    """
    from runner.service.stoppable import run_stoppable

    return run_stoppable(functools.partial(_look_up, base_url, api_key, list(task_ids)))  # Ctrl-C cuts it
