"""The state directory's disk fills while POSTs are on the wire (OS sweep, 2026-12-05): a real full disk at the
money path's worst moment. The tasks were created and paid for; the ledger cannot record their ids (SQLite FULL).
Each id must be kept: the rescue journal takes it (its reserve given up for it), and the write is tried again; the
next run, once space is freed, records what the journal holds, downloads the videos and pays for nothing twice.
Held (the reserve's space let the retried writes through).

The provider holds each answer (``p_slow``) while the test fills the disk; the videos have a disk of their own
(``state/outputs`` on a second tmpfs) so the room check before each submit still passes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from runner.jobs import JobState
from runner.ledger import open_ledger
from runner.ledger.rescue import RESCUE_NAME, pending_entries
from runner.testing import fill_disk

from test_cli_support import (
    THREE_JOBS,
    ProviderFactory,
    counts,
    finish_cli,
    provider,
    run_args,
    run_cli,
    start_cli,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

SmallDisk = Callable[..., Path]  # the suite's fixture (tests/conftest.py)
EXIT_LOCAL = 6


def test_ids_answered_onto_a_full_state_disk_are_journalled_and_recorded_by_the_next_run(
        tmp_path: Path, provider: ProviderFactory, small_disk: SmallDisk) -> None:
    sim = provider(task_seconds=0.1, p_slow=1.0, slow_seconds=3.0)
    manifest = write_manifest(tmp_path, THREE_JOBS)
    state = small_disk(tmp_path / "state", size="96m")  # past the 64 MiB kept free for the ledger, or nothing is sent
    small_disk(state / "outputs", size="128m")
    planned = run_cli(*run_args("run", manifest, state, *sim.engine_args("--budget", "0")), cwd=tmp_path)
    assert planned.code == 3 and sim.accepted() == 0, str(planned)  # the ledger knows the jobs, none sent

    proc = start_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    wait_for(lambda: sim.accepted() == 3, what="three tasks created, their answers held")
    filler = fill_disk(state)
    out = finish_cli(proc)
    # The journal's reserve, given up for the first id, may leave the ledger room to record them all after all (exit
    # 0); else the run stops (exit 6). Either way no id is lost: each is in the ledger or in the journal.
    assert proc.returncode in (0, EXIT_LOCAL), out
    assert "could not record" in out and RESCUE_NAME in out, out
    with open_ledger(state, readonly=True) as ledger:
        recorded = {job.task_id for job in ledger.iter_jobs("trio") if job.task_id is not None}
        assert ledger.counts("trio")[JobState.IN_DOUBT] == 0
    journalled = {entry.task_id for entry in pending_entries(state)}
    assert recorded | journalled == set(sim.sim.task_ids()), (recorded, journalled, out)
    assert sim.accepted() == 3

    filler.unlink()  # the operator's fix
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0, str(again)
    assert counts(state) == {"done": 3} and sim.accepted() == 3 and sim.max_per_body() == 1
    assert pending_entries(state) == []
