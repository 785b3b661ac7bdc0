"""`runner adopt --file` / `--held-back`: a job held back because its output name already holds a video no job in the
ledger records (a ledger restored from a backup older than the last run) is recorded done from that file.

Before, every run held such a job back (exit 6) and the operator's only ways on were to move the file away and pay
for the video again, or to leave the job held back for ever, its video missing from status, exports and reports:
the provider has no list of tasks, so the task id of the lost submit cannot be found for `runner adopt KEY TASK_ID`.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sqlite3
from pathlib import Path

from runner.layout import output_path
from runner.ledger import open_ledger

from test_cli_support import (
    SIX_JOBS,
    Provider,
    ProviderFactory,
    counts,
    export_jsonl,
    provider,
    run_args,
    run_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

SIX = SIX_JOBS.replace("concurrency: 1", "concurrency: 6")
TWO = SIX.replace("[cat, dog, owl]", "[cat]")
HELD_BACK = "already holds a video that no job in the ledger records"


def _restored_beside_its_videos(tmp_path: Path, sim: Provider, state_name: str = "state"
                                ) -> tuple[Path, Path, dict[str, str]]:
    """Two jobs run to done, the ledger backed up, four more run to done, the backup put back and its commit mark
    set aside (the way on the refusal of an older ledger prints): (manifest, state, each held-back job's key → its
    video's path relative to the state directory). The next run holds those four back, exit 6, nothing paid."""
    manifest = write_manifest(tmp_path, TWO, name="six.yaml")
    state = tmp_path / state_name
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    source, dest = sqlite3.connect(state / "ledger.db"), sqlite3.connect(tmp_path / "backup.db")
    try:
        source.backup(dest)
    finally:
        dest.close()
        source.close()
    write_manifest(tmp_path, SIX, name="six.yaml")
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    assert sim.accepted() == 6
    with open_ledger(state, readonly=True) as ledger:
        paths = {job.key: str(job.path) for job in ledger.iter_jobs("six") if job.vars["animal"] != "cat"}
    for newer in state.glob("ledger.db*"):
        newer.unlink()
    shutil.copyfile(tmp_path / "backup.db", state / "ledger.db")
    (state / "ledger.mark").rename(state / "ledger.mark.old")
    held = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert held.code == 6 and "4 job(s) were not sent" in held.stderr and HELD_BACK in held.stderr, str(held)
    assert "--held-back" in held.stderr and "--file" in held.stderr, str(held)  # the way on, named
    assert sim.accepted() == 6 and counts(state, "six") == {"done": 2, "pending": 4}
    return manifest, state, paths


def test_held_back_jobs_are_adopted_from_their_files_and_nothing_is_paid_again(
    tmp_path: Path, provider: ProviderFactory,
) -> None:
    sim = provider(task_seconds=0.05)
    manifest, state, paths = _restored_beside_its_videos(tmp_path, sim)

    with open_ledger(state):  # a run holds the ledger: refused, as `runner adopt KEY TASK_ID` is
        locked = run_cli("adopt", str(manifest), "--held-back", "--state", str(state), cwd=tmp_path)
    assert locked.code == 75 and "this command waits for the run" in locked.stderr, str(locked)
    dry = run_cli("adopt", str(manifest), "--held-back", "--dry-run", "--state", str(state), cwd=tmp_path)
    assert dry.code == 0 and dry.stdout.count("would be done from its file") == 4, str(dry)
    assert counts(state, "six") == {"done": 2, "pending": 4}  # a dry run changes nothing

    adopted = run_cli("adopt", str(manifest), "--held-back", "--state", str(state), cwd=tmp_path)
    assert adopted.code == 0 and adopted.stdout.count(": done from its file") == 4, str(adopted)
    assert counts(state, "six") == {"done": 6}

    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0, str(again)
    assert sim.accepted() == 6 and sim.max_per_body() == 1  # nothing billed again
    with open_ledger(state, readonly=True) as ledger:
        for key, path in paths.items():
            job = ledger.get(key)
            assert job is not None and job.path == path and job.task_id is None and job.spent_usd == job.estimated_usd
            assert (state / path).stat().st_mode & 0o222 == 0  # read-only, as a stored video (exports link it)
            [attempt] = ledger.attempts(key)
            assert attempt.outcome == "adopted" and attempt.task_id is None and "from its file" in str(attempt.detail)
        assert ledger.spent_usd("six") == sum(job.estimated_usd for job in ledger.iter_jobs("six"))
    rows = {row["key"]: row for row in export_jsonl(tmp_path, manifest, state)}
    assert len(rows) == 6 and all(rows[key].get("task_id") is None for key in paths)  # no task id invented
    shown = run_cli("show", next(iter(paths)), "--state", str(state), cwd=tmp_path)
    assert shown.code == 0 and "from its file" in shown.stdout, str(shown)
    report = run_cli("report", str(manifest), "--state", str(state), "--to", str(tmp_path / "report"), cwd=tmp_path)
    assert report.code == 0 and all((tmp_path / "report" / "videos" / Path(p).name).exists() for p in paths.values())


def test_a_truncated_file_or_another_jobs_video_is_not_adopted(tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider(task_seconds=0.05)
    manifest, state, paths = _restored_beside_its_videos(tmp_path, sim)
    (cut, cut_path), (copied, copied_path), (moved, moved_path), _ = paths.items()
    whole = (state / cut_path).read_bytes()
    (state / cut_path).write_bytes(whole[: len(whole) // 2])  # a copy cut short
    with open_ledger(state, readonly=True) as ledger:
        done_key, done_path = next((job.key, str(job.path)) for job in ledger.iter_jobs("six") if job.path)
    (state / copied_path).unlink()
    shutil.copyfile(state / done_path, state / copied_path)  # another job's recorded video at this job's name
    (state / moved_path).rename(state / "outputs" / "set-aside.mp4")  # nothing at its name: not held back

    truncated = run_cli("adopt", cut, "--file", "--state", str(state), cwd=tmp_path)
    assert truncated.code == 2 and "is not a whole video" in truncated.stderr, str(truncated)
    others = run_cli("adopt", copied[:12], "--file", "--state", str(state), cwd=tmp_path)
    assert others.code == 2 and f"the same video as {done_path}" in others.stderr, str(others)
    nothing = run_cli("adopt", moved, "--file", "--state", str(state), cwd=tmp_path)
    assert nothing.code == 2 and f"no file at {moved_path}" in nothing.stderr, str(nothing)
    recorded = run_cli("adopt", done_key, "--file", "--state", str(state), cwd=tmp_path)
    assert recorded.code == 2 and "is done with task" in recorded.stderr and "not a job held back" in recorded.stderr, str(recorded)
    every = run_cli("adopt", str(manifest), "--held-back", "--state", str(state), cwd=tmp_path)
    assert every.code == 2 and "2 job(s) not adopted" in every.stderr, str(every)
    assert every.stdout.count(": done from its file") == 1, str(every)
    assert counts(state, "six") == {"done": 3, "pending": 3}
    assert sim.accepted() == 6


def test_the_adopt_commands_a_held_back_run_prints_work_as_pasted_with_its_state_elsewhere(
    tmp_path: Path, provider: ProviderFactory,
) -> None:
    """The run was given `--state elsewhere`: the `runner adopt` commands its exit 6 names carry it (and the manifest's
    path), so pasted they adopt the jobs. Before, they said `runner adopt MANIFEST --held-back` and `runner adopt KEY
    --file` alone: pasted, the first looked for a file named MANIFEST, and with the manifest's path both opened the
    default state/ beside it, which holds no ledger (exit 2)."""
    sim = provider(task_seconds=0.05)
    manifest, state, paths = _restored_beside_its_videos(tmp_path, sim, state_name="elsewhere")
    held = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert held.code == 6, str(held)
    commands = {shlex.join(shlex.split(typed)) for typed in re.findall(r"`(runner adopt [^`]+)`", held.stderr)}
    [every] = [typed for typed in commands if "--held-back" in typed]
    one_file = min(typed for typed in commands if "--file" in typed)  # one per job held back
    key = next(key for key in paths if key in one_file)
    first = run_cli(*shlex.split(one_file)[1:], cwd=tmp_path)
    assert first.code == 0 and first.stdout.count(": done from its file") == 1 and key in first.stdout, str(first)
    rest = run_cli(*shlex.split(every)[1:], cwd=tmp_path)
    assert rest.code == 0 and rest.stdout.count(": done from its file") == 3, str(rest)
    assert counts(state, "six") == {"done": 6}
    assert not (tmp_path / "state").exists()
    assert sim.accepted() == 6


def test_a_job_of_two_manifests_adopted_from_its_file_has_its_video_at_both_names(
    tmp_path: Path, provider: ProviderFactory,
) -> None:
    """A batch's videos kept, its ledger lost, the batch planned again with `--new-ledger`, and a second manifest that
    asks for the same videos planned beside it: every job is held back (its first name holds a video no job records)
    and `runner adopt --held-back` records it done from that file — at the first manifest's name only. A download
    links each other manifest's name to the video; this did not, and nothing later did (a run places them only when a
    manifest is planned again): the second manifest's jobs were done with no video at their names, for ever."""
    sim = provider(task_seconds=0.05)
    first = write_manifest(tmp_path, TWO, name="six.yaml")
    state = tmp_path / "state"
    assert run_cli(*run_args("run", first, state, *sim.engine_args()), cwd=tmp_path).code == 0
    for old in state.glob("ledger.*"):  # the ledger lost, the videos kept
        old.unlink()
    second = write_manifest(tmp_path, TWO.replace("name: six", "name: pair"), name="pair.yaml")
    for manifest, extra in ((first, ("--new-ledger",)), (second, ())):
        held = run_cli(*run_args("run", manifest, state, *sim.engine_args(), *extra), cwd=tmp_path)
        assert held.code == 6 and HELD_BACK in held.stderr, str(held)
    assert not (state / "outputs" / "pair").exists() or not any((state / "outputs" / "pair").iterdir())

    adopted = run_cli("adopt", str(first), "--held-back", "--state", str(state), cwd=tmp_path)
    assert adopted.code == 0 and adopted.stdout.count(": done from its file") == 2, str(adopted)
    assert "2 name(s) of other manifests asking for the same video(s) linked to them" in adopted.stdout, str(adopted)
    again = run_cli(*run_args("run", second, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0, str(again)
    with open_ledger(state, readonly=True) as ledger:
        jobs = list(ledger.iter_jobs("pair"))
        names = {job.key: state / output_path("pair", str(ledger.target_output("pair", job.key))) for job in jobs}
    assert len(names) == 2 and all(name.is_file() for name in names.values()), sorted(map(str, names.values()))
    assert sim.accepted() == 2  # nothing paid again
