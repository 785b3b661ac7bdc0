"""The writing commands other than ``run`` stopped by the operator (Ctrl-C, SIGTERM) at the steps a ``kill -9`` is
tested at (``RUNNER_TEST_CRASH_AT`` names the step, ``RUNNER_TEST_CRASH_SIGNAL`` the signal sent there): what the
next command finds must be as safe as what a kill leaves. Nothing here pays twice: the simulator's books say so.
"""

from __future__ import annotations

import hashlib
import json
import signal
from pathlib import Path

import pytest

from runner.jobs import JobState
from runner.ledger import open_ledger
from runner.ledger.rescue import CRASH_ENV, CRASH_SIGNAL_ENV
from runner.ledger.review_queue import QUEUE_NAME, QueuedDecision, queue_decision

from test_cli_support import (
    ProviderFactory,
    a_batch_partly_paid,
    assert_runs_refuse_a_copy_cut_short,
    copy_without_reading,
    done_trio,
    provider,
    run_args,
    run_cli,
)

__all__ = ["provider"]

EXIT_STOPPED = 3


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("point", ["ledger-copy-made", "ledger-copy-rows"])
def test_a_copy_stopped_by_a_signal_leaves_a_destination_runs_refuse_as_a_kill_does(
    tmp_path: Path, provider: ProviderFactory, point: str, signal_name: str,
) -> None:
    """`runner ledger copy` stopped by Ctrl-C or SIGTERM before its commit removed the destination it had marked:
    the state directory then held no ledger, and a run there (where the operator was moving the batch) made a new
    one and paid for every job again, the one the source had paid for too. Now a stopped copy leaves what a killed
    one leaves: a destination every run refuses, and that the next copy starts over."""
    sim = provider()
    here, manifest, state, moved, paid = a_batch_partly_paid(tmp_path, sim)
    stopped = run_cli("ledger", "copy", str(state), str(moved), cwd=here,
                      env={CRASH_ENV: point, CRASH_SIGNAL_ENV: signal_name})
    assert stopped.code == EXIT_STOPPED and f"{signal_name}: stopped" in stopped.stderr, str(stopped)
    assert "run the same `runner ledger copy` again" in stopped.stderr, str(stopped)
    assert_runs_refuse_a_copy_cut_short(manifest, moved, state, sim, point, here)
    assert sim.accepted() == paid  # nothing paid again

    copied = run_cli("ledger", "copy", str(state), str(moved), cwd=here)  # starts over
    assert copied.code == 0, str(copied)
    assert sorted(p.name for p in moved.iterdir() if p.name.startswith("ledger.db")) == ["ledger.db"]
    assert run_cli(*run_args("run", manifest, moved, *sim.engine_args()), cwd=here).code == 0
    assert sim.accepted() == 3 and sim.max_per_body() == 1


@pytest.mark.parametrize("point", ["regen-moved", "regen-dropped"])
def test_a_regenerate_stopped_between_its_move_and_its_ledger_step_says_to_run_it_again_and_loses_nothing(
        tmp_path: Path, provider: ProviderFactory, point: str) -> None:
    """Ctrl-C on `runner regenerate` after it moved the rejected video aside, before the job went back to pending:
    it said only "SIGINT: stopped (no request was on the wire)", exit 3, and the operator could not tell the clip was
    neither kept where the ledger says nor queued. It now says to run the same command again, which finishes the
    step; the video is kept aside, and the next run pays for the fresh sample once."""
    manifest, state, sim, keys = done_trio(tmp_path, provider)
    cat = state / "outputs" / "trio" / "cat.mp4"
    old_sha = hashlib.sha256(cat.read_bytes()).hexdigest()
    assert run_cli("reject", str(manifest), keys["cat"], "--reason", "r", "--state", str(state), cwd=tmp_path).code == 0
    stopped = run_cli("regenerate", str(manifest), "--state", str(state), cwd=tmp_path,
                      env={CRASH_ENV: point, CRASH_SIGNAL_ENV: "SIGINT"})
    assert stopped.code == EXIT_STOPPED and "SIGINT: stopped" in stopped.stderr, str(stopped)
    assert "run the same `runner regenerate` again" in stopped.stderr, str(stopped)
    kept = state / "outputs" / "trio" / "_rejected" / f"{keys['cat']}.0.mp4"
    assert kept.exists() and not cat.exists()

    again = run_cli("regenerate", str(manifest), "--state", str(state), cwd=tmp_path)
    assert again.code == 0 and "1 job(s) back to pending" in again.stdout, str(again)
    with open_ledger(state, readonly=True) as ledger:
        job = ledger.get(keys["cat"], "trio")
        assert job is not None and job.state is JobState.PENDING and job.sample == 1
        [rejection] = ledger.rejections(keys["cat"])
        assert rejection.kept_path == f"outputs/trio/_rejected/{keys['cat']}.0.mp4" and rejection.sha256 == old_sha
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == old_sha
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    assert sim.accepted() == 4 and cat.exists()  # the fresh sample, paid once


def test_an_hf_export_killed_before_its_metadata_is_in_place_leaves_no_part_the_next_export_keeps(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """`runner export --format hf` killed (kill -9, a power cut) with its rows written, not yet renamed into place:
    no metadata.jsonl (never half of one), but its temporary ``.metadata.jsonl.tmp-PID-…`` stayed in the dataset
    folder, kept by every later export and uploaded with it (``hf upload DIR``). The next export now removes what a
    dead export left there: the folder is the export and nothing else."""
    manifest, state, _sim, _keys = done_trio(tmp_path, provider)
    hf = tmp_path / "hf"
    export = ("export", str(manifest), "--state", str(state), "--format", "hf", "--to", str(hf))
    killed = run_cli(*export, cwd=tmp_path, env={CRASH_ENV: "export-rows"})
    assert killed.code == -signal.SIGKILL, f"the crash point was not reached: {killed}"
    assert not (hf / "metadata.jsonl").exists()  # never half: not in place until whole
    assert [p.name for p in hf.rglob(".*")], "the kill left no temporary file: the test tests nothing"

    done = run_cli(*export, cwd=tmp_path)
    assert done.code == 0, str(done)
    assert sorted(p.name for p in hf.rglob(".*")) == [], "a dead export's temporary file was kept"
    assert sorted(p.name for p in hf.iterdir()) == ["README.md", "cat.mp4", "dog.mp4", "metadata.jsonl", "owl.mp4"]
    rows = [json.loads(line) for line in (hf / "metadata.jsonl").read_text().splitlines()]
    assert sorted(row["file_name"] for row in rows) == ["cat.mp4", "dog.mp4", "owl.mp4"]


def test_a_report_killed_before_its_page_is_in_place_leaves_no_part_the_next_report_keeps(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """`runner report` killed with its page written under a temporary name: index.html is the last whole one (here:
    none), but ``.index.html.tmp-PID-…`` stayed beside it for good. The next report removes it."""
    manifest, state, _sim, _keys = done_trio(tmp_path, provider)
    report = tmp_path / "report"
    args = ("report", str(manifest), "--state", str(state), "--to", str(report))
    killed = run_cli(*args, cwd=tmp_path, env={CRASH_ENV: "report-page"})
    assert killed.code == -signal.SIGKILL, f"the crash point was not reached: {killed}"
    assert not (report / "index.html").exists()
    assert [p.name for p in report.glob(".index.html.tmp-*")], "the kill left no temporary file: the test tests nothing"

    done = run_cli(*args, cwd=tmp_path)
    assert done.code == 0, str(done)
    assert sorted(p.name for p in report.rglob(".*.tmp-*")) == [], "a dead report's temporary file was kept"
    assert (report / "index.html").exists()


def test_a_jsonl_export_killed_before_its_file_is_in_place_leaves_no_part_the_next_export_keeps(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """`runner export --to FILE` killed with its rows written under ``.FILE.tmp-PID-…``: FILE is the last whole export,
    but the temporary file stayed beside it for good. The next export to FILE removes it."""
    manifest, state, _sim, _keys = done_trio(tmp_path, provider)
    out = tmp_path / "out" / "jobs.jsonl"
    out.parent.mkdir()
    args = ("export", str(manifest), "--state", str(state), "--format", "jsonl", "--to", str(out))
    killed = run_cli(*args, cwd=tmp_path, env={CRASH_ENV: "export-rows"})
    assert killed.code == -signal.SIGKILL, f"the crash point was not reached: {killed}"
    assert not out.exists() and [p.name for p in out.parent.glob(".jobs.jsonl.tmp-*")], "nothing left: tests nothing"

    done = run_cli(*args, cwd=tmp_path)
    assert done.code == 0, str(done)
    assert sorted(p.name for p in out.parent.iterdir()) == ["jobs.jsonl"], "a dead export's temporary file was kept"
    assert len(out.read_text().splitlines()) == 3


def test_a_reject_queued_for_a_run_killed_before_it_saved_it_travels_with_a_ledger_copy(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """`runner reject` during a run queues its decision for the run to save; the run was killed first (kill -9, a
    reboot) and the operator then moved the batch with `runner ledger copy`. The copy took the rows, not the queue,
    and the source, marked moved, never applies it: the rejection was gone without a word, the clip exported as good.
    The copy now applies the queue in the source first, under its lock."""
    _manifest, state, _sim, keys = done_trio(tmp_path, provider)
    with open_ledger(state, readonly=True) as ledger:
        job = ledger.get(keys["cat"], "trio")
    assert job is not None
    queue_decision(state, QueuedDecision(job.key, "trio", "reject", "melting paws", job.sample, 1.0))  # what it left
    moved = tmp_path / "moved" / "state"
    copied = run_cli("ledger", "copy", str(state), str(moved), cwd=tmp_path)
    assert copied.code == 0, str(copied)
    assert not (state / QUEUE_NAME).exists()
    with open_ledger(moved, readonly=True) as ledger:
        now = ledger.get(keys["cat"], "trio")
        assert now is not None and now.review == "rejected", now


def test_a_copy_that_cannot_read_the_review_queue_is_refused_and_loses_no_decision(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """The review queue was written by a run as root (a reject queued during it, the run killed before it saved it);
    the operator copies the ledger as a user who cannot read the queue. The copy went ahead with only a logged error:
    the rejection was in neither ledger (the source, marked moved, never applies it again) and the clip was exported as
    good. The copy is refused, naming the file and the fix, the source not marked moved; a copy that can read the
    queue later carries the rejection."""
    _manifest, state, _sim, keys = done_trio(tmp_path, provider)
    with open_ledger(state, readonly=True) as ledger:
        job = ledger.get(keys["cat"], "trio")
    assert job is not None
    queue_decision(state, QueuedDecision(job.key, "trio", "reject", "melting paws", job.sample, 1.0))
    moved = tmp_path / "moved" / "state"
    refused = copy_without_reading(state, QUEUE_NAME, moved, tmp_path)
    assert refused.returncode == 2, (refused.returncode, refused.stderr)
    assert f"cannot read the review queue {state / QUEUE_NAME} (Permission denied)" in refused.stderr, refused.stderr
    assert "Make it readable by this user" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert not (moved / "ledger.db").exists() and (state / QUEUE_NAME).exists()
    with open_ledger(state, readonly=True) as ledger:
        still = ledger.get(keys["cat"], "trio")
        assert still is not None and still.review is None  # nothing applied, nothing lost: the queue is as it was

    copied = run_cli("ledger", "copy", str(state), str(moved), cwd=tmp_path)
    assert copied.code == 0, str(copied)
    with open_ledger(moved, readonly=True) as ledger:
        now = ledger.get(keys["cat"], "trio")
        assert now is not None and now.review == "rejected", now
