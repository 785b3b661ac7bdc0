"""A SQLite ledger's state directory when the wall clock steps back between runs.

``--new-ledger`` sets the former ledger's files aside as ``<name>.stale-<time>`` (to the second, by the wall
clock): its rescue journal (task ids paid for that no ledger holds), its review queue, its commit mark, its WAL.
A clock set back (NTP after a clock that ran ahead) gives a second already used, and a rename onto an existing
name replaces that file: the rescue journal set aside before — paid task ids, kept for the operator — was lost.
"""

from __future__ import annotations

from pathlib import Path

from runner.ledger import open_ledger
from runner.ledger.rescue import RESCUE_NAME
from runner.ledger.review_queue import QUEUE_NAME

AT = 1_796_000_000.0  # the second both set-asides read (the clock set back to it in between)


def test_a_second_new_ledger_at_a_second_already_used_keeps_the_rescue_journal_set_aside_before(tmp_path: Path) -> None:
    """Two --new-ledger opens read the same second: both rescue journals and both review queues are kept."""
    state = tmp_path / "state"
    for task in ("task-of-the-first-ledger", "task-of-the-second-ledger"):
        state.mkdir(exist_ok=True)
        (state / "ledger.db").unlink(missing_ok=True)  # the ledger gone; --new-ledger starts another
        (state / RESCUE_NAME).write_text(f'{{"task_id": "{task}"}}\n', encoding="utf-8")
        (state / QUEUE_NAME).write_text(f'{{"decided": "{task}"}}\n', encoding="utf-8")
        with open_ledger(state, clock=lambda: AT, new_ledger=True):
            pass
    kept = sorted(p.read_text(encoding="utf-8") for p in state.glob(f"{RESCUE_NAME}.stale-*"))
    assert len(kept) == 2 and "task-of-the-first-ledger" in kept[0] + kept[1], kept
    queues = sorted(p.read_text(encoding="utf-8") for p in state.glob(f"{QUEUE_NAME}.stale-*"))
    assert len(queues) == 2, queues
