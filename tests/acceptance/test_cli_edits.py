"""Editing a manifest between runs (and while its tasks run): the budget, the estimates and the paid
videos hold across edits (issue 9, items 4, 5, 6 and 24).

Each test drives `runner` subprocesses against one simulator on loopback and checks the
simulator's own books: what it accepted (paid for) and the bytes of each video it served.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from runner.ledger import open_ledger

from test_cli_support import (
    THREE_JOBS,
    ProviderFactory,
    counts,
    provider,
    run_args,
    run_cli,
    status,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

JOB_USD = 3 * 0.112  # one 3 s job of THREE_JOBS (estimate)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_budget_holds_across_prompt_edits(tmp_path: Path, provider: ProviderFactory) -> None:
    """Four prompt edits under --budget 1.0: the simulator never accepts more than the budget buys."""
    sim = provider()
    state = tmp_path / "state"
    budget = 1.0
    text = THREE_JOBS
    for edit in range(5):
        manifest = write_manifest(tmp_path, text)
        result = run_cli(*run_args("run", str(manifest), state, *sim.engine_args("--budget", str(budget))),
                         cwd=tmp_path)
        assert result.code in (0, 3), str(result)
        assert sim.accepted() * JOB_USD <= budget + 1e-9, f"edit {edit}: {sim.accepted()} tasks paid\n{result}"
        text = text.replace("crossing", f"crossing (take {edit + 2})" if edit == 0 else "crossing")
        text = text.replace(f"(take {edit + 1})", f"(take {edit + 2})")
    assert sim.accepted() == 2  # 2 x 0.336 fit in 1.0, a third would not
    plan = json.loads(run_cli("plan", str(manifest), "--state", str(state), "--json", cwd=tmp_path).stdout)
    assert plan["estimated_usd_spent"] == round(2 * JOB_USD, 4)
    shown = status(tmp_path, manifest, state)
    assert shown["estimated_spent_usd"] == round(2 * JOB_USD, 4)
    assert shown["estimated_spent_on_dropped_jobs_usd"] == round(2 * JOB_USD, 4)
    text_status = run_cli("status", str(manifest), "--state", str(state), cwd=tmp_path)
    assert "of which 0.67 USD on jobs no longer in the manifest" in text_status.stdout, str(text_status)


def test_a_price_change_reaches_jobs_not_yet_submitted(tmp_path: Path, provider: ProviderFactory) -> None:
    """The budget weighs the next job at the price of the last plan, not the price it was first planned at."""
    sim = provider()
    state = tmp_path / "state"
    cheap = THREE_JOBS + "limits: {concurrency: 1}\npricing: {per_second: 0.01}\n"
    manifest = write_manifest(tmp_path, cheap)
    submitted = run_cli(*run_args("submit", str(manifest), state, *sim.engine_args()), cwd=tmp_path)
    assert submitted.code == 3, str(submitted)
    assert sim.accepted() == 1
    write_manifest(tmp_path, cheap.replace("per_second: 0.01", "per_second: 1.0"))
    result = run_cli(*run_args("run", str(manifest), state, *sim.engine_args("--budget", "2.0")), cwd=tmp_path)
    assert result.code == 3, str(result)
    assert "budget" in result.stderr
    assert sim.accepted() == 1  # the next job now costs 3.00 USD: 0.03 + 3.00 would pass 2.00
    shown = status(tmp_path, manifest, state)
    assert shown["estimated_pending_usd"] == 6.0
    assert shown["estimated_spent_usd"] == 0.03  # what was committed when it was submitted


def test_videos_of_jobs_dropped_while_running_are_stored(tmp_path: Path, provider: ProviderFactory) -> None:
    """Jobs an edit drops while their paid tasks run are collected into the orphans folder, and the exit
    code says whether that is finished."""
    sim = provider()
    state = tmp_path / "state"
    manifest = write_manifest(tmp_path)
    first = run_cli(*run_args("run", str(manifest), state, *sim.engine_args()), cwd=tmp_path)
    assert first.code == 0, str(first)
    write_manifest(tmp_path, THREE_JOBS.replace("[cat, dog, owl]", "[cat, dog, owl, fox, eel]"))
    submitted = run_cli(*run_args("submit", str(manifest), state, *sim.engine_args()), cwd=tmp_path)
    assert submitted.code == 3, str(submitted)
    assert sim.accepted() == 5
    write_manifest(tmp_path)  # fox and eel dropped while their tasks run
    # Every result URL the provider hands out has expired: the orphans cannot be stored this run.
    sim.sim.configure(p_expired_url=1.0)
    stuck = run_cli(*run_args("run", str(manifest), state, *sim.engine_args()), cwd=tmp_path)
    assert stuck.code == 3, str(stuck)  # not complete: two paid videos are not on disk yet
    assert status(tmp_path, manifest, state)["orphans"] == {"succeeded": 2}
    sim.sim.configure(p_expired_url=0.0)
    final = run_cli(*run_args("collect", str(manifest), state, *sim.engine_args()), cwd=tmp_path)
    assert final.code == 0, str(final)
    assert counts(state) == {"done": 3}
    assert sim.accepted() == 5
    books = sim.sim.stats()["tasks"]
    with open_ledger(state, readonly=True) as ledger:
        jobs = list(ledger.iter_jobs(None))
    assert len(jobs) == 5
    for job in jobs:
        assert job.path is not None and job.task_id is not None
        assert _sha256(state / job.path) == books[job.task_id]["video_sha256"], job.key
    orphaned = sorted(p.name for p in (state / "outputs" / "trio" / "_orphans").iterdir())
    assert len(orphaned) == 2
    shown = status(tmp_path, manifest, state)
    assert shown["orphans"] == {"done": 2}
    assert shown["estimated_spent_usd"] == round(5 * JOB_USD, 4)
    text = run_cli("status", str(manifest), "--state", str(state), cwd=tmp_path).stdout
    assert "orphans" in text and "2 done" in text, text
    assert json.loads(json.dumps(shown))  # JSON-ready


SWAPPABLE = """\
name: trio
defaults:
  duration: 3
  negative_prompt: "no {other} in sight"
prompt: "a {animal} crossing a quiet street"
matrix:
  animal: [cat, dog, owl]
  include:
    - {animal: cat, other: dog}
    - {animal: dog, other: cat}
    - {animal: owl, other: owl}
output: "{animal}.mp4"
"""


def _files_match_the_manifest(state: Path, books: dict[str, dict[str, str]]) -> dict[str, str]:
    """Each job's file at the manifest's name holds that job's video (sha256 from the simulator's books)."""
    seen = {}
    with open_ledger(state, readonly=True) as ledger:
        for job in ledger.iter_jobs("trio"):
            assert job.output is not None and job.task_id is not None
            file = state / "outputs" / "trio" / job.output
            assert _sha256(file) == books[job.task_id]["video_sha256"], f"{job.output} holds another video"
            assert job.path == f"outputs/trio/{job.output}"
            seen[job.output] = job.key
    return seen


def test_swapped_output_names_are_renamed_to_match(tmp_path: Path, provider: ProviderFactory) -> None:
    """After an edit swaps two jobs' file names, the next run renames the stored files to match."""
    sim = provider()
    state = tmp_path / "state"
    manifest = write_manifest(tmp_path, SWAPPABLE)
    assert run_cli(*run_args("run", str(manifest), state, *sim.engine_args()), cwd=tmp_path).code == 0
    before = _files_match_the_manifest(state, sim.sim.stats()["tasks"])
    write_manifest(tmp_path, SWAPPABLE.replace('output: "{animal}.mp4"', 'output: "{other}.mp4"'))
    result = run_cli(*run_args("run", str(manifest), state, *sim.engine_args()), cwd=tmp_path)
    assert result.code == 0, str(result)
    after = _files_match_the_manifest(state, sim.sim.stats()["tasks"])
    assert "renamed 2 stored video(s)" in result.stderr
    assert after["cat.mp4"] == before["dog.mp4"] and after["dog.mp4"] == before["cat.mp4"]
    assert sim.accepted() == 3
    assert sorted(p.name for p in (state / "outputs" / "trio").iterdir()) == ["cat.mp4", "dog.mp4", "owl.mp4"]


def test_a_file_in_the_way_is_never_overwritten_and_is_reported(tmp_path: Path, provider: ProviderFactory) -> None:
    """A file the ledger does not know at a job's new name stays; run and status say so; once it is gone,
    the next run renames."""
    sim = provider()
    state = tmp_path / "state"
    manifest = write_manifest(tmp_path, SWAPPABLE)
    assert run_cli(*run_args("run", str(manifest), state, *sim.engine_args()), cwd=tmp_path).code == 0
    stray = state / "outputs" / "trio" / "cat-v2.mp4"
    stray.write_bytes(b"someone else's file")
    write_manifest(tmp_path, SWAPPABLE.replace('output: "{animal}.mp4"', 'output: "{animal}-v2.mp4"'))
    planned = run_cli("plan", str(manifest), "--state", str(state), cwd=tmp_path)
    assert "outputs/trio/cat-v2.mp4 holds a file the ledger does not know" in planned.stdout, str(planned)
    plan = json.loads(run_cli("plan", str(manifest), "--state", str(state), "--json", cwd=tmp_path).stdout)
    assert (plan["renames"], plan["renames_blocked"]) == (3, ["outputs/trio/cat-v2.mp4"])
    result = run_cli(*run_args("run", str(manifest), state, *sim.engine_args()), cwd=tmp_path)
    assert result.code == 0, str(result)
    assert "outputs/trio/cat-v2.mp4 is a file the ledger does not know" in result.stderr, str(result)
    assert stray.read_bytes() == b"someone else's file"
    assert status(tmp_path, manifest, state)["misplaced_files"] == 1
    text = run_cli("status", str(manifest), "--state", str(state), cwd=tmp_path).stdout
    assert "1 stored video(s) are not at the name trio gives them" in text, text
    stray.unlink()
    again = run_cli(*run_args("run", str(manifest), state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0, str(again)
    _files_match_the_manifest(state, sim.sim.stats()["tasks"])
    assert status(tmp_path, manifest, state)["misplaced_files"] == 0


def test_an_edited_jobs_new_video_takes_its_name_in_the_run_that_makes_it(tmp_path: Path,
                                                                          provider: ProviderFactory) -> None:
    """A prompt edit (or an input image's: a key follows the image's bytes) gives each file name to a new job while
    the old video still holds it. The new video was stored beside it (cat.<key>.mp4) and took the name only at
    the next run's planning; the run that makes it now renames it, the old video going to _orphans."""
    sim = provider()
    state = tmp_path / "state"
    manifest = write_manifest(tmp_path, THREE_JOBS)
    assert run_cli(*run_args("run", str(manifest), state, *sim.engine_args()), cwd=tmp_path).code == 0
    folder = state / "outputs" / "trio"
    old = {_sha256(folder / name) for name in ("cat.mp4", "dog.mp4", "owl.mp4")}
    write_manifest(tmp_path, THREE_JOBS.replace("quiet street", "quiet street at night"))
    result = run_cli(*run_args("run", str(manifest), state, *sim.engine_args()), cwd=tmp_path)
    assert result.code == 0, str(result)
    assert sim.accepted() == 6
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == ["cat.mp4", "dog.mp4", "owl.mp4"], str(result)
    assert not old & {_sha256(folder / name) for name in ("cat.mp4", "dog.mp4", "owl.mp4")}, "the new videos hold the names"
    assert {_sha256(p) for p in (folder / "_orphans").iterdir()} == old, "the old ones are kept"
    _files_match_the_manifest(state, sim.sim.stats()["tasks"])
