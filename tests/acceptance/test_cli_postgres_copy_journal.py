"""`runner ledger copy` from a PostgreSQL ledger and the rescue journals of the hosts that ran on it.

A run on a PostgreSQL ledger whose answer found the server gone keeps the accepted task id in its own state
directory's rescue journal, which the next run on that host records. A copy of the ledger sees no host's directory:
copied without them, those jobs were in doubt in the copy (`retry --in-doubt` pays again) and the source, marked
moved, is run no more. `--state DIR` records a host's journal in the source first, as a run there would.
"""

from __future__ import annotations

from pathlib import Path

from runner.jobs import JobState
from runner.ledger import open_ledger
from runner.ledger.postgres import open_postgres_ledger
from runner.ledger.rescue import RESCUE_NAME, RescueEntry, append_entry, pending_entries
from runner.manifest import expand, load_manifest
from tests.acceptance.test_cli_support import run_cli, write_manifest


def _journalled_on_a_host(tmp_path: Path, url: str) -> tuple[Path, str]:
    """A host's run on ``url`` whose job was accepted as task-paid, the id in the host's journal only: (its state
    directory, the job's key)."""
    spec = load_manifest(write_manifest(tmp_path))
    host = tmp_path / "host-a" / "state"
    host.mkdir(parents=True)
    with open_postgres_ledger(url, host) as ledger:
        ledger.register(spec.name, spec.digest, expand(spec))
        key = next(iter(ledger.iter_jobs(spec.name))).key
        attempt = ledger.mark_submitting(key)
        assert attempt is not None
        assert append_entry(host, RescueEntry(key=key, task_id="task-paid", attempt=attempt, at=0.0))
    return host, key


def test_a_copy_of_a_postgres_ledger_records_the_journal_of_the_state_directory_given(tmp_path: Path,
                                                                                    pg_url: str) -> None:
    host, key = _journalled_on_a_host(tmp_path, pg_url)
    copy = tmp_path / "state-copy"
    copied = run_cli("ledger", "copy", pg_url, str(copy), "--state", str(host), cwd=tmp_path)
    assert copied.code == 0, str(copied)
    assert f"1 task id(s) recorded from {host / RESCUE_NAME}" in copied.stderr, str(copied)
    assert pending_entries(host) == []
    with open_ledger(copy, readonly=True) as ledger:
        job = ledger.get(key)
        assert job is not None and job.state is JobState.RUNNING and job.task_id == "task-paid", job


def test_a_copy_run_from_the_host_records_its_state_directorys_journal_and_no_other_ledgers(tmp_path: Path,
                                                                                           pg_url: str) -> None:
    """Without --state, the copy run where a run would find its state directory (./state, or RUNNER_STATE_DIR)
    records that journal when a run on this ledger used it (a write mark of it is there), as the next run there
    would; a journal of another ledger found there is left as it is."""
    host, key = _journalled_on_a_host(tmp_path, pg_url)
    assert any((host / ".ledger-marks").glob("*.mark"))
    copied = run_cli("ledger", "copy", pg_url, str(tmp_path / "state-copy"), cwd=host.parent)
    assert copied.code == 0 and f"1 task id(s) recorded from {Path('state') / RESCUE_NAME}" in copied.stderr, str(copied)
    with open_ledger(tmp_path / "state-copy", readonly=True) as ledger:
        job = ledger.get(key)
        assert job is not None and job.state is JobState.RUNNING and job.task_id == "task-paid", job
    other = tmp_path / "elsewhere" / "state"  # a SQLite batch's state directory, its journal that ledger's
    other.mkdir(parents=True)
    append_entry(other, RescueEntry(key=key, task_id="task-other", attempt=1, at=0.0))
    # marked moved to state-copy, it is copied again only once made live again (a copy of it is refused: a twin)
    assert run_cli("ledger", "reopen", pg_url, cwd=tmp_path).code == 0
    again = run_cli("ledger", "copy", pg_url, str(tmp_path / "second-copy"), cwd=other.parent,
                    env={"RUNNER_STATE_DIR": None})
    assert again.code == 0 and "recorded from" not in again.stderr, str(again)
    assert [entry.task_id for entry in pending_entries(other)] == ["task-other"]


def test_a_copy_of_a_postgres_ledger_whose_journal_cannot_be_read_is_refused(tmp_path: Path, pg_url: str) -> None:
    """A journal that is there but cannot be read (here: no file at all but a folder by its name, EISDIR; the same
    path as a permission denied) refuses the copy, naming it; nothing is recorded, copied or marked."""
    host, key = _journalled_on_a_host(tmp_path, pg_url)
    (host / RESCUE_NAME).rename(host / "kept.jsonl")
    (host / RESCUE_NAME).mkdir()
    refused = run_cli("ledger", "copy", pg_url, str(tmp_path / "state-copy"), "--state", str(host), cwd=tmp_path)
    assert refused.code == 6 and f"cannot read the rescue journal {host / RESCUE_NAME}" in refused.stderr, str(refused)
    assert not (tmp_path / "state-copy" / "ledger.db").exists()
    with open_postgres_ledger(pg_url, tmp_path / "reader", readonly=True) as ledger:
        job = ledger.get(key)
        assert job is not None and job.state is JobState.SUBMITTING, job


def test_state_given_with_a_state_directory_source_is_refused(tmp_path: Path) -> None:
    state, other = tmp_path / "state", tmp_path / "other"
    other.mkdir()
    refused = run_cli("ledger", "copy", str(state), str(tmp_path / "copy"), "--state", str(other), cwd=tmp_path)
    assert refused.code == 2 and "--state names the state directories" in refused.stderr, str(refused)
