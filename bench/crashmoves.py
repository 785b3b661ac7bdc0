"""The operator torture's moves of a batch's ledger: what the book of this host's ledgers is for.

``mv state /big/state`` under an unchanged cron line, and the manifest copied to another folder and run there, each
give the runner a new, empty ledger for a batch another ledger of this host planned — and, before the book
(``runner/service/ledger_book.py``, docs/architecture.md "book of this host's ledgers"), paid for the batch again.
An operator round (:meth:`bench.crashlib.CrashHarness.operator_round`) may do either between runs:

- :func:`move_state`: the state folder renamed to ``state-2``, ``state-3``, … under the work folder; one run with
  the old ``--state`` (sometimes killed at a random instant) must pay nothing — refused with exit 2 when not
  killed —, then the harness follows the state to its new place (every later run and the verdict read it there).
- :func:`run_copy`: the manifest (with its input images, for an i2v batch) copied to a folder of its own and run
  there from that folder without ``--state``: the state folder found from it is a new one. Exit 2, nothing paid.

The copies go beside the work folder, not in it: the runner finds a manifest's state folder by walking up from the
manifest's folder, so a copy under the work folder would find the batch's own ``state/`` and be no copy at all.
A run that pays here raises AssertionError with the books' verdict (paid duplicates): with the book's guard off
(``guard_new_ledger`` returning at once) the first such action does.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.crashlib import CrashHarness

# The book's refusal of a new ledger (runner/service/ledger_book.py: _refusal), the older check of the state folders
# found from the manifest (runner/service/state.py: check_ledger_elsewhere), and how every refusal ends.
BOOK_REFUSAL = "has sent nothing yet, but at least"
ELSEWHERE_REFUSAL = "a new ledger there would pay for the batch again"
NOTHING_SENT = "nothing was sent"


def has_sent(harness: CrashHarness) -> bool:
    """Whether the batch's ledger has sent a job (its write-ahead, at least): then its run noted it on the book,
    armed, before that POST, and a new ledger for its jobs must be refused. Not read from the book itself: with the
    book's guard broken (nothing noted) these actions must still run, and pay, and the torture say so."""
    return any(row["state"] != "pending" for row in harness.ledger_rows())


def move_state(harness: CrashHarness, *, kill: bool, max_after: float) -> list[str]:
    """``mv state state-N``, one run with the old ``--state`` (the unchanged cron line), then follow the state."""
    old = harness.state
    harness.moves += 1
    new = harness.workdir / f"state-{harness.moves + 1}"
    while new.exists():  # a work folder used again (--workdir): never onto a folder of before
        harness.moves += 1
        new = harness.workdir / f"state-{harness.moves + 1}"
    old.rename(new)
    try:
        did = _refused_run(harness, f"with the state folder moved from {old} to {new}, the old --state",
                           kill=kill, max_after=max_after, state=old)
    finally:
        harness.state = new  # the operator finds where the state went and gives it from now on
        harness.places.append(new)
    return ["state moves", *did]


def run_copy(harness: CrashHarness, *, kill: bool, max_after: float) -> list[str]:
    """The manifest copied to a folder of its own and run there (no ``--state``): a new ledger beside the copy."""
    copies = harness.workdir.parent / f"{harness.workdir.name}-copies"
    folder = copies / f"copy-{harness.copies + 1}"
    while folder.exists():  # a work folder used again (--workdir): its copies of before are left as they are
        harness.copies += 1
        folder = copies / f"copy-{harness.copies + 1}"
    harness.copies += 1
    folder.mkdir(parents=True)
    copy = folder / harness.manifest.name
    shutil.copyfile(harness.manifest, copy)
    if harness.images is not None:  # its local input images, named relative to it
        shutil.copytree(harness.images.folder, folder / harness.images.folder.name)
    harness.places.append(folder / "state")
    did = _refused_run(harness, f"the manifest copied to {copy}", kill=kill, max_after=max_after,
                       manifest=copy, cwd=folder)
    return ["manifest copies", *did]


def _refused_run(harness: CrashHarness, what: str, *, kill: bool, max_after: float, state: Path | None = None,
                 manifest: Path | None = None, cwd: Path | None = None) -> list[str]:
    """One run of a new ledger for the batch's jobs: it must pay nothing, and, when no signal landed on it, be
    refused (exit 2). A kill lands at a random instant of its start-up, planning or refusal.

    The book refuses it, or the check of the state folders found from the manifest does: after a second move the old
    ``--state`` has no ledger, while the ``state/`` beside the manifest holds the plan the first move's refused run
    left there. That check passes over such a plan when the book can be read and names the ledger that planned the
    jobs (runner/service/state.py ``_booked``), so here the book's refusal comes; a refusal by that check is still
    accepted, and counted ("refused naming a plan left by a refused run"), should the book be unable to vouch."""
    log = harness.workdir / "runner.log"
    offset = log.stat().st_size if log.exists() else 0
    paid = harness.sim_stats()["accepted_total"]
    sig = harness.rng.choice((signal.SIGKILL, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT))
    code = harness.run_once(kill_after=harness.rng.uniform(0.05, min(0.7, max_after)) if kill else None, sig=sig,
                            refusal_ok=True, state=state, manifest=manifest, cwd=cwd)
    said = log.read_bytes()[offset:].decode(errors="replace")
    again = harness.sim_stats()["accepted_total"] - paid
    if again:
        raise AssertionError(f"a run {what} paid for {again} task(s) again (exit {code}): {harness.verdict()}\n"
                             f"{said[-3000:]}")
    if harness.last_kill_landed:
        return ["refused runs killed"]
    if code != 2 or NOTHING_SENT not in said or not (BOOK_REFUSAL in said or ELSEWHERE_REFUSAL in said):
        raise AssertionError(f"a run {what} was not refused (exit {code}):\n{said[-3000:]}")
    return [] if BOOK_REFUSAL in said else ["refused naming a plan left by a refused run"]
