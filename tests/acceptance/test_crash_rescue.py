"""Real SIGKILLs in the rescue journal's windows (review of the issue-9 merge).

The riskiest window of the merge: the provider accepted a POST, the ledger could not record its task
id (the disk is full), the id went to the rescue journal — and the process dies before any retry.
Then, at the next start, a kill between recording the journal's line in the ledger and marking the
line consumed (the line is replayed twice). The crash points are reached with RUNNER_TEST_CRASH_AT
(tests only); the full disk with a file size limit. From the simulator's books: nothing paid twice,
every paid task recorded once, nothing left in doubt.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from runner.ledger import open_ledger
from runner.ledger.rescue import CRASH_ENV, RESCUE_NAME, append_line, pending_entries
from runner.simulator import ManualClock, SimConfig, Simulator, SimulatorThread

from test_cli_support import (
    KEY,
    Provider,
    ProviderFactory,
    clean_env,
    cli_argv,
    copy_without_reading,
    counts,
    provider,
    run_args,
    run_cli,
    setpriv_argv,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

KILLED = -signal.SIGKILL


def _planned(tmp_path: Path, sim: Provider) -> tuple[Path, Path]:
    """The three-job manifest planned into a new state directory, nothing sent: (manifest, state)."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    plan = run_cli(*run_args("run", manifest, state, *sim.engine_args("--budget", "0")), cwd=tmp_path)
    assert plan.code == 3 and counts(state) == {"pending": 3}, str(plan)
    return manifest, state


def test_killed_after_journalling_and_again_while_replaying_loses_and_repays_nothing(tmp_path: Path) -> None:
    clock = ManualClock()
    sim = Provider(Simulator(SimConfig(task_seconds=60.0), clock=clock), None)  # type: ignore[arg-type]
    sim.server = SimulatorThread(sim.sim).start()
    try:
        manifest, state = _planned(tmp_path, sim)
        # The ledger's WAL takes the first records, not all (the limit depends on the schema: 48-56 kB
        # works today): an accepted id meets a full disk, and the
        # process dies right after journalling it.
        full = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path, max_file_bytes=52_000,
                       env={CRASH_ENV: "rescue-journalled"})
        assert full.code == KILLED, f"the crash point was not reached: {full}"
        journalled = pending_entries(state)
        assert journalled, "killed without a journal line"
        # The next start records the line in the ledger and dies before marking it consumed.
        replay = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path,
                         env={CRASH_ENV: "rescue-applied"})
        assert replay.code == KILLED, f"the crash point was not reached: {replay}"
        assert pending_entries(state), "the consumed line was written before the crash point"
        with open_ledger(state, readonly=True) as ledger:
            first = ledger.get(journalled[0].key)
        assert first is not None and first.task_id == journalled[0].task_id and str(first.state) == "running"
        # A clean start replays the line again: already recorded, nothing changes.
        sim.sim.configure(task_seconds=0.0)
        clock.advance(61.0)
        again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
        # Other POSTs the first kill cut off on the wire are rightly in doubt (held, never resubmitted).
        found = counts(state)
        assert again.code == (4 if found.get("in_doubt") else 0), str(again)
        assert set(found) <= {"done", "in_doubt"} and found.get("done", 0) >= 1, found
        assert sim.max_per_body() == 1, "a body was paid twice"
        assert pending_entries(state) == []
        with open_ledger(state, readonly=True) as ledger:
            job = ledger.get(journalled[0].key)
            assert job is not None and str(job.state) == "done" and job.task_id == journalled[0].task_id
            recorded = {job.task_id for job in ledger.iter_jobs("trio") if job.task_id}
            accepted = [a.task_id for job in ledger.iter_jobs("trio") for a in ledger.attempts(job.key)
                        if a.kind == "submit" and a.outcome == "accepted"]
        assert sorted(accepted) == sorted(recorded), "a task id recorded twice"
        assert len(recorded) + found.get("in_doubt", 0) >= len(sim.sim.task_ids())  # paid = recorded or held
        assert (state / RESCUE_NAME).exists()  # kept as a record for the operator
    finally:
        sim.server.stop()


def test_a_run_that_stops_with_ids_in_the_journal_says_how_many_and_where(tmp_path: Path,
                                                                         provider: ProviderFactory) -> None:
    """The multi-host sweep: a run whose ledger went away with POSTs on the wire logged each "ACCEPTED … could not
    record" line, then ended on a line about the ledger alone. The last lines now say how many accepted ids only
    the rescue journal holds, and where; the next run records them and pays nothing twice."""
    sim = provider(task_seconds=0.0)
    manifest, state = _planned(tmp_path, sim)
    full = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path, max_file_bytes=52_000)
    kept = len(pending_entries(state))
    assert full.code == 6 and kept, str(full)
    assert f"{kept} accepted task id(s) are kept in {state / RESCUE_NAME}" in full.stderr, str(full)
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0 and counts(state) == {"done": 3}, str(again)
    assert sim.max_per_body() == 1 and pending_entries(state) == []


def test_a_ledger_copied_with_ids_in_its_journal_takes_them_along_and_pays_nothing_twice(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """A run stopped by a full disk kept accepted task ids in the rescue journal only, and said so; the operator moved
    the batch to a roomier disk with `runner ledger copy`. The copy took the ledger's rows, never the journal: in the
    copy each such job was in doubt (held, its paid video never fetched; the run offered `retry --in-doubt`, which
    pays again), and the source, marked moved, was never opened to record them. The copy now records the journal's
    ids in the source first, under its lock, so they travel with the rows."""
    sim = provider(task_seconds=0.0)
    manifest, state = _planned(tmp_path, sim)
    full = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path, max_file_bytes=52_000)
    journalled = pending_entries(state)
    assert full.code == 6 and journalled, str(full)
    moved = tmp_path / "roomier" / "state"
    copied = run_cli("ledger", "copy", str(state), str(moved), cwd=tmp_path)
    assert copied.code == 0, str(copied)
    assert f"{len(journalled)} task id(s) recorded from {state / RESCUE_NAME}" in copied.stderr, str(copied)
    assert pending_entries(state) == []  # recorded, in the source and so in the copy
    with open_ledger(moved, readonly=True) as ledger:
        for entry in journalled:
            job = ledger.get(entry.key)
            assert job is not None and job.task_id == entry.task_id and str(job.state) == "running", job
    again = run_cli(*run_args("run", manifest, moved, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0 and counts(moved) == {"done": 3}, str(again)
    assert sim.max_per_body() == 1


def _journalled(tmp_path: Path, provider: ProviderFactory) -> tuple[Path, Path, Provider]:
    """A run stopped by a full disk with accepted task ids in its rescue journal only: (manifest, state, provider)."""
    sim = provider(task_seconds=0.0)
    manifest, state = _planned(tmp_path, sim)
    full = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path, max_file_bytes=52_000)
    assert full.code == 6 and pending_entries(state), str(full)
    return manifest, state, sim


def test_a_copy_that_cannot_read_the_journal_is_refused_and_changes_nothing(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """The journal was written by a run as root; the operator copies the ledger as a user who cannot read it. The
    copy went ahead with only a logged error: in the copy those jobs were in doubt (`retry --in-doubt` pays again)
    and the source, marked moved, never applied the journal. The copy is refused, naming the file and the fix;
    the source is not marked moved, nothing is written where the copy was to go, and a copy that can read it later
    takes the ids along."""
    manifest, state, sim = _journalled(tmp_path, provider)
    journalled = pending_entries(state)
    moved = tmp_path / "roomier" / "state"
    refused = copy_without_reading(state, RESCUE_NAME, moved, tmp_path)
    assert refused.returncode == 2, (refused.returncode, refused.stderr)
    assert f"cannot read the rescue journal {state / RESCUE_NAME} (Permission denied)" in refused.stderr, refused.stderr
    assert "Make it readable by this user" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert not (moved / "ledger.db").exists() and pending_entries(state) == journalled
    copied = run_cli("ledger", "copy", str(state), str(moved), cwd=tmp_path)
    assert copied.code == 0 and pending_entries(state) == [], str(copied)
    again = run_cli(*run_args("run", manifest, moved, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0 and counts(moved) == {"done": 3} and sim.max_per_body() == 1, str(again)


def test_a_run_that_cannot_read_the_journal_stops_before_anything_and_holds_nothing_in_doubt(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """The journal was written by a run as root; the next run (cron as a user) cannot read it. Gone on without it,
    each of those jobs would be held in doubt, its task paid and its id unread, and `retry --in-doubt` would pay for
    it again. The state directory's ownership check stops the run first (exit 6), naming the file and the fix:
    nothing sent, no job in doubt (a guard: the journal's own refusal, for a read that fails otherwise, is
    tests/integration/test_ledger_rescue_replay.py's); once it can be read, the next run records the ids and pays
    for nothing twice."""
    as_user = setpriv_argv()
    manifest, state, sim = _journalled(tmp_path, provider)
    journalled = pending_entries(state)
    paid = sim.accepted()
    (state / RESCUE_NAME).chmod(0o000)
    refused = subprocess.run([*as_user, *cli_argv(*run_args("run", manifest, state, *sim.engine_args()))],
                             cwd=tmp_path, env=clean_env({"NOVITA_API_KEY": KEY}), capture_output=True, text=True,
                             timeout=60, check=False)
    (state / RESCUE_NAME).chmod(0o660)
    assert refused.returncode == 6, (refused.returncode, refused.stderr)
    assert f"{state / RESCUE_NAME} belongs to root (mode 0000)" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr and sim.accepted() == paid, refused.stderr
    assert "in_doubt" not in counts(state) and pending_entries(state) == journalled
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0 and counts(state) == {"done": 3} and sim.max_per_body() == 1, str(again)


def test_a_copy_says_which_journal_lines_it_recorded_and_which_it_could_not(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """The copy's line counted every journal line as "recorded", also one whose task id the ledger held already and
    one naming a job the ledger does not hold (its task id then in neither ledger, unsaid). It says what it
    recorded, what was on record already, and names the task ids it could not record and why."""
    _, state, _ = _journalled(tmp_path, provider)
    journalled = pending_entries(state)
    first = journalled[0]  # its id again under another attempt: on record once the first line is
    append_line(state / RESCUE_NAME, {"key": first.key, "task_id": first.task_id, "attempt": first.attempt + 99,
                                      "at": 0.0})
    append_line(state / RESCUE_NAME, {"key": "no-such-job", "task_id": "task-gone", "attempt": 1, "at": 0.0})
    copied = run_cli("ledger", "copy", str(state), str(tmp_path / "moved"), cwd=tmp_path)
    assert copied.code == 0, str(copied)
    assert f"{len(journalled)} task id(s) recorded from {state / RESCUE_NAME}" in copied.stderr, str(copied)
    assert (f"1 task id(s) of {state / RESCUE_NAME} not recorded: {state / 'ledger.db'} holds no such job"
            in copied.stderr), str(copied)
    assert "no-such-job task task-gone" in copied.stderr, str(copied)
    assert f"1 line(s) of {state / RESCUE_NAME} name task ids" in copied.stderr, str(copied)
