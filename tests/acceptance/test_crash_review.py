"""A real SIGKILL in the review loop's two half-done file moves (review sweep B):

* ``runner regenerate`` killed after it moved the rejected video to ``_rejected/``, before the ledger step
  (``RUNNER_TEST_CRASH_AT=regen-moved``): an ``accept`` puts the video back where the ledger says it is; a
  ``regenerate`` of another manifest sharing the job finishes the step and records where the video really is; so
  does the next ``runner run`` (killed at ``regen-moved`` or ``regen-dropped``), which pays for the fresh sample once.
* ``runner verify`` killed after it removed a damaged file, the good download committed beside it
  (``RUNNER_TEST_CRASH_AT=verify-removed``): the next ``verify`` moves the good copy in, downloading nothing.

Nothing here pays: the simulator's books say so.
"""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import pytest

from runner.jobs import JobState
from runner.ledger import open_ledger
from runner.ledger.rescue import CRASH_ENV

from test_cli_support import (
    THREE_JOBS,
    ProviderFactory,
    done_trio,
    export_jsonl,
    provider,
    run_args,
    run_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

KILLED = -signal.SIGKILL
# The same three requests as trio's, under another manifest's name and folder: the jobs are shared.
SHARED = THREE_JOBS.replace("name: trio", "name: other").replace('output: "{animal}.mp4"', 'output: "b/{animal}.mp4"')


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_accept_after_a_regenerate_killed_mid_move_puts_the_video_back(tmp_path: Path, provider: ProviderFactory) -> None:
    manifest, state, sim, keys = done_trio(tmp_path, provider)
    cat_file = state / "outputs" / "trio" / "cat.mp4"
    old_sha = _sha(cat_file)
    assert run_cli("reject", str(manifest), keys["cat"], "--reason", "r", "--state", str(state), cwd=tmp_path).code == 0
    killed = run_cli("regenerate", str(manifest), "--state", str(state), cwd=tmp_path, env={CRASH_ENV: "regen-moved"})
    assert killed.code == KILLED, f"the crash point was not reached: {killed}"
    kept = state / "outputs" / "trio" / "_rejected" / f"{keys['cat']}.0.mp4"
    assert kept.exists() and not cat_file.exists()  # moved aside; the ledger still says done at cat.mp4

    accepted = run_cli("accept", str(manifest), keys["cat"], "--state", str(state), cwd=tmp_path)
    assert accepted.code == 0 and "1 clip(s) accepted" in accepted.stdout, str(accepted)
    assert "put back at outputs/trio/cat.mp4" in accepted.stderr, str(accepted)
    assert cat_file.exists() and _sha(cat_file) == old_sha and not kept.exists()
    with open_ledger(state, readonly=True) as ledger:
        cat = ledger.get(keys["cat"], "trio")
        assert cat is not None and cat.state is JobState.DONE and cat.review == "accepted" and cat.sample == 0
        assert cat.path == "outputs/trio/cat.mp4" and cat.sha256 == old_sha
    assert len(export_jsonl(tmp_path, manifest, state)) == 3  # the accepted clip is exported again
    check = run_cli("verify", str(manifest), "--state", str(state), "--check-only", cwd=tmp_path, key=None)
    assert check.code == 0, str(check)
    assert sim.accepted() == 3  # nothing paid


def test_a_regenerate_killed_mid_move_is_finished_by_another_manifest_sharing_the_job(
        tmp_path: Path, provider: ProviderFactory) -> None:
    manifest, state, sim, keys = done_trio(tmp_path, provider)
    other = write_manifest(tmp_path, SHARED, "other.yaml")
    assert run_cli(*run_args("run", other, state, *sim.engine_args()), cwd=tmp_path).code == 0
    assert sim.accepted() == 3  # shared: linked, not paid again
    old_sha = _sha(state / "outputs" / "trio" / "cat.mp4")
    assert run_cli("reject", str(other), keys["cat"], "--reason", "r", "--state", str(state), cwd=tmp_path).code == 0
    killed = run_cli("regenerate", str(other), "--state", str(state), cwd=tmp_path, env={CRASH_ENV: "regen-moved"})
    assert killed.code == KILLED, f"the crash point was not reached: {killed}"
    kept = f"outputs/other/_rejected/{keys['cat']}.0.mp4"
    assert (state / kept).exists()

    finished = run_cli("regenerate", str(manifest), "--state", str(state), cwd=tmp_path)
    assert finished.code == 0, str(finished)
    assert f"kept at {kept}" in finished.stdout, str(finished)
    assert "kept under outputs/trio/_rejected/" not in finished.stdout, str(finished)  # nothing is kept there
    assert not (state / "outputs" / "trio" / "_rejected").exists()
    with open_ledger(state, readonly=True) as ledger:
        cat = ledger.get(keys["cat"], "trio")
        assert cat is not None and cat.state is JobState.PENDING and cat.sample == 1
        [rejection] = ledger.rejections(keys["cat"])
        assert rejection.kept_path == kept and rejection.sha256 == old_sha
    assert _sha(state / kept) == old_sha
    assert sim.accepted() == 3  # the fresh sample is paid only by the next run


def test_verify_after_a_verify_killed_mid_repair_moves_the_good_copy_in(
        tmp_path: Path, provider: ProviderFactory) -> None:
    manifest, state, sim, _keys = done_trio(tmp_path, provider)
    folder = state / "outputs" / "trio"
    good = {name: (folder / name).read_bytes() for name in ("cat.mp4", "dog.mp4", "owl.mp4")}
    damaged = bytearray(good["dog.mp4"])
    damaged[100] ^= 0xFF
    (folder / "dog.mp4").write_bytes(bytes(damaged))
    killed = run_cli("verify", str(manifest), "--state", str(state), "--base-url", sim.base_url, cwd=tmp_path,
                     env={CRASH_ENV: "verify-removed"})
    assert killed.code == KILLED, f"the crash point was not reached: {killed}"
    [beside] = [p for p in folder.iterdir() if p.name.startswith("dog.") and p.name != "dog.mp4"]
    assert beside.read_bytes() == good["dog.mp4"] and not (folder / "dog.mp4").exists()
    # --check-only says the clip is missing, and where the good copy is (helper review: it said "missing" alone).
    check = run_cli("verify", str(manifest), "--state", str(state), "--check-only", cwd=tmp_path, key=None)
    assert check.code == 1 and f"a good copy is at outputs/trio/{beside.name}" in check.stdout, str(check)

    # No API key, no provider: the good copy is put back, nothing downloaded.
    again = run_cli("verify", str(manifest), "--state", str(state), cwd=tmp_path, key=None)
    assert again.code == 0 and "1 restored, 0 not restored" in again.stdout, str(again)
    assert sorted(p.name for p in folder.iterdir()) == ["cat.mp4", "dog.mp4", "owl.mp4"]
    assert {name: (folder / name).read_bytes() for name in good} == good
    assert sim.accepted() == 3


@pytest.mark.parametrize("point", ["regen-moved", "regen-dropped"])
def test_a_run_after_a_regenerate_killed_mid_move_finishes_it_and_pays_for_the_fresh_sample_once(
        tmp_path: Path, provider: ProviderFactory, point: str) -> None:
    """`runner regenerate` killed (kill -9) after it moved the rejected clip to _rejected/, before its job went back to
    pending: the next `runner run` ended "complete", exit 0, the rejected clip aside and no fresh sample queued: the
    operator's decision silently dropped. The run now finishes the step first, says so, and pays for the fresh sample
    once; the rejected clip is kept aside, recorded where it is."""
    manifest, state, sim, keys = done_trio(tmp_path, provider)
    other = write_manifest(tmp_path, SHARED, "other.yaml")
    assert run_cli(*run_args("run", other, state, *sim.engine_args()), cwd=tmp_path).code == 0
    cat = state / "outputs" / "trio" / "cat.mp4"
    old_sha = _sha(cat)
    assert run_cli("reject", str(manifest), keys["cat"], "--reason", "r", "--state", str(state), cwd=tmp_path).code == 0
    killed = run_cli("regenerate", str(manifest), "--state", str(state), cwd=tmp_path, env={CRASH_ENV: point})
    assert killed.code == KILLED, f"the crash point was not reached: {killed}"
    kept = f"outputs/trio/_rejected/{keys['cat']}.0.mp4"
    assert (state / kept).exists() and not cat.exists()

    ran = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert ran.code == 0, str(ran)
    said = ran.stdout + ran.stderr
    assert f"{keys['cat']}: the `runner regenerate` stopped after moving its rejected video to {kept}" in said, said
    assert sim.accepted() == 4 and sim.max_per_body() == 2  # the fresh sample, paid once
    with open_ledger(state, readonly=True) as ledger:
        job = ledger.get(keys["cat"], "trio")
        assert job is not None and job.state is JobState.DONE and job.sample == 1 and job.review is None
        [rejection] = ledger.rejections(keys["cat"])
        assert rejection.kept_path == kept and rejection.sha256 == old_sha and rejection.outcome == "regenerated"
    assert _sha(state / kept) == old_sha  # the rejected clip is kept, never lost
    assert cat.exists() and _sha(cat) != old_sha
    shared = state / "outputs" / "other" / "b" / "cat.mp4"
    assert shared.exists() and _sha(shared) == _sha(cat)  # the other manifest has the fresh sample too

    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0 and "runner regenerate` stopped" not in again.stdout + again.stderr, str(again)
    assert sim.accepted() == 4


def test_a_run_after_a_regenerate_of_two_clips_killed_at_the_first_finishes_it_and_counts_the_other(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """`runner regenerate` of two rejected clips killed after moving the first aside: the first is finished by the run
    (paid once), the second, never moved, is still only rejected. The run ended "complete" without a word of either;
    it now says which it finished and how many are still rejected, with the command that queues them."""
    manifest, state, sim, keys = done_trio(tmp_path, provider)
    rejected = run_cli("reject", str(manifest), keys["cat"], keys["dog"], "--reason", "r", "--state", str(state),
                       cwd=tmp_path)
    assert rejected.code == 0, str(rejected)
    killed = run_cli("regenerate", str(manifest), "--state", str(state), cwd=tmp_path, env={CRASH_ENV: "regen-moved"})
    assert killed.code == KILLED, f"the crash point was not reached: {killed}"

    ran = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    said = ran.stdout + ran.stderr
    assert ran.code == 0 and said.count("runner regenerate` stopped after moving its rejected video") == 1, said
    assert f"1 clip(s) of trio rejected and not generated again (left out of exports); `runner regenerate {manifest}" \
           f" --state {state}` queues a fresh sample of each" in said, said
    assert sim.accepted() == 4  # the one the regenerate had moved, paid once
    with open_ledger(state, readonly=True) as ledger:
        states = {animal: ledger.get(keys[animal], "trio") for animal in ("cat", "dog")}
        assert all(job is not None and job.state is JobState.DONE for job in states.values())
        assert sorted((job.sample, job.review) for job in states.values() if job is not None) == [(0, "rejected"),
                                                                                                (1, None)]
