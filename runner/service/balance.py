"""Before a batch: can the account pay for it? (``run`` and ``submit``; issue 12, item 2c.)

The remaining estimate is what the jobs left to submit may cost (pending jobs, at their estimates),
capped by what ``--budget`` still allows. When the provider's balance (:meth:`NovitaClient.balance`)
is lower, the run is refused before anything is sent — exit 2, with both figures and the
``--budget`` that would spend only what is there. A balance that cannot be read (no route, an
error, a timeout) is a warning: the run goes on, and the provider's own
``BILLING_BALANCE_NOT_ENOUGH`` still stops it (exit 3) if the money runs out. A balance read is
recorded for the run (:data:`~runner.reporting.history.RUN_BALANCE_META`): ``runner runs`` shows it.
"""

from __future__ import annotations

import math

import anyio

from runner.client import NovitaClient
from runner.config import RunSettings
from runner.errors import RunnerError, UsageError
from runner.jobs import JobState
from runner.ledger import LedgerBackend
from runner.reporting.history import RUN_BALANCE_META
from runner.service.outcome import Notice, Notify

__all__ = ["check_balance", "remaining_estimate"]

BALANCE_CHECK_S = 30.0  # the most the balance check may hold a run's start (then it goes on unchecked)


def remaining_estimate(ledger: LedgerBackend, scope: str | None, budget_usd: float | None) -> tuple[float, int]:
    """What the jobs left to submit may cost (capped by the budget left), and how many they are."""
    jobs = ledger.counts(scope).get(JobState.PENDING, 0)
    cost = ledger.estimate_usd(scope, [JobState.PENDING])
    if budget_usd is not None:
        cost = min(cost, max(0.0, budget_usd - ledger.spent_usd(scope)))
    return cost, jobs


async def check_balance(client: NovitaClient, ledger: LedgerBackend, scope: str | None, settings: RunSettings,
                        say: Notify) -> None:
    """Refuse (UsageError, exit 2) a batch whose remaining estimate passes the account balance."""
    cost, jobs = remaining_estimate(ledger, scope, settings.budget_usd)
    if cost <= 0:
        return
    # Bounded as a whole: its tries of each route could hold the start for minutes (a route that trickles), past
    # --max-runtime, before the first submit (hostile-data sweep, 2026-12-05: the first POST at +153 s of a 20 s run).
    limit = BALANCE_CHECK_S if settings.max_runtime is None else min(BALANCE_CHECK_S, settings.max_runtime / 4)
    try:
        balance = None
        with anyio.move_on_after(limit):
            balance = await client.balance()
    except RunnerError as exc:
        say(Notice(f"could not read the account balance ({exc.message}); going on without checking it", "warning"))
        return
    if balance is None:
        say(Notice(f"could not read the account balance within {limit:g} s; going on without checking it", "warning"))
        return
    runs = ledger.runs(limit=1)  # this process's run (one writer at a time): its balance goes on record
    if runs:
        ledger.set_meta(f"{RUN_BALANCE_META}{runs[0].id}", f"{balance.available_usd:.4f}")
    shown = _usd(balance.available_usd)
    if cost > balance.available_usd:
        refusal = (f"the account balance is {shown} USD but the {jobs} job(s) left to submit may cost {cost:.2f} USD"
                   " (estimate): nothing was sent. Top up the account")
        if shown == "0.00" or balance.available_usd < 0:  # nothing to spend: no budget fits
            raise UsageError(f"{refusal}; it has nothing left to spend")
        fits = math.floor((ledger.spent_usd(scope) + balance.available_usd) * 100) / 100
        raise UsageError(f"{refusal}, or pass --budget {fits:.2f} to spend only what is there (the budget counts what"
                         " this manifest has spent already)")
    full = ledger.estimate_usd(scope, [JobState.PENDING])
    what = "the jobs left to submit may cost" if cost >= full - 1e-9 else \
        f"the budget lets this run spend (the {jobs} job(s) left may cost {full:.2f} USD)"
    say(Notice(f"account balance {shown} USD covers the {cost:.2f} USD (estimate) {what}"))


def _usd(amount: float) -> str:
    """Two decimals, without the ``-0.00`` of an amount a hair below zero."""
    text = f"{amount:.2f}"
    return "0.00" if text == "-0.00" else text
