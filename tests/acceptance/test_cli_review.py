"""The review loop as a user runs it: reject clips, regenerate exactly those (new paid tasks,
within --budget), rejected videos kept aside and out of exports; verify restores files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from runner.jobs import JobState
from runner.ledger import open_ledger

from test_cli_support import (
    THREE_JOBS_USD,
    ProviderFactory,
    done_trio,
    export_jsonl,
    provider,
    run_args,
    run_cli,
)

__all__ = ["provider"]  # the fixture, imported for pytest

ONE = THREE_JOBS_USD / 3


def test_reject_then_regenerate_pays_once_more_for_exactly_those(tmp_path: Path, provider: ProviderFactory) -> None:
    manifest, state, sim, keys = done_trio(tmp_path, provider)
    cat_file = state / "outputs" / "trio" / "cat.mp4"
    old_sha = hashlib.sha256(cat_file.read_bytes()).hexdigest()

    ambiguous = run_cli("reject", str(manifest), "", "--reason", "x", "--state", str(state), cwd=tmp_path)
    assert ambiguous.code == 2 and "\n" not in ambiguous.stderr.strip()
    result = run_cli("reject", str(manifest), keys["cat"][:10], "--reason", "melting paws", "--state", str(state),
                     cwd=tmp_path)
    assert result.code == 0, str(result)
    assert "1 clip(s) rejected" in result.stdout
    assert [row["key"] for row in export_jsonl(tmp_path, manifest, state)] == [keys["dog"], keys["owl"]]

    over = run_cli("regenerate", str(manifest), "--state", str(state), "--budget", str(THREE_JOBS_USD + ONE / 2),
                   cwd=tmp_path)
    assert over.code == 2 and "--budget" in over.stderr, str(over)
    dry = run_cli("regenerate", str(manifest), "--state", str(state), "--dry-run", cwd=tmp_path)
    assert dry.code == 0 and f"1 rejected clip(s) will be generated again: 1 new paid task(s), up to ${ONE:.2f}" \
        in dry.stdout, str(dry)
    assert cat_file.exists()

    regen = run_cli("regenerate", str(manifest), "--state", str(state), "--budget", str(THREE_JOBS_USD + ONE),
                    cwd=tmp_path)
    assert regen.code == 0, str(regen)
    kept = state / "outputs" / "trio" / "_rejected" / f"{keys['cat']}.0.mp4"
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == old_sha and not cat_file.exists()

    again = run_cli(*run_args("run", manifest, state, *sim.engine_args(), "--budget", str(THREE_JOBS_USD + ONE)),
                    cwd=tmp_path)
    assert again.code == 0, str(again)
    assert sim.accepted() == 4  # three first samples, one regeneration
    with open_ledger(state, readonly=True) as ledger:
        cat = ledger.get(keys["cat"], "trio")
        assert cat is not None and cat.state is JobState.DONE and cat.sample == 1 and cat.review is None
        assert cat.path == "outputs/trio/cat.mp4" and cat_file.exists()
        assert ledger.spent_usd("trio") > THREE_JOBS_USD + ONE * 0.99
        [rejection] = ledger.rejections(keys["cat"])
        assert rejection.kept_path == f"outputs/trio/_rejected/{keys['cat']}.0.mp4"
        assert rejection.reason == "melting paws" and rejection.sha256 == old_sha
        assert len({a.task_id for a in ledger.attempts(keys["cat"]) if a.kind == "submit"}) == 2
    assert len(export_jsonl(tmp_path, manifest, state)) == 3
    show = run_cli("show", keys["cat"][:12], "--state", str(state), cwd=tmp_path)
    assert show.code == 0 and "melting paws (regenerated, kept at outputs/trio/_rejected/" in show.stdout, str(show)
    assert "sample 2" in show.stdout
    nothing = run_cli("regenerate", str(manifest), "--state", str(state), cwd=tmp_path)
    assert nothing.code == 0 and "no rejected clips" in nothing.stdout


def test_rejected_clips_leave_the_hf_export(tmp_path: Path, provider: ProviderFactory) -> None:
    manifest, state, _sim, keys = done_trio(tmp_path, provider)
    assert run_cli("reject", str(manifest), keys["owl"], "--reason", "r", "--state", str(state), cwd=tmp_path).code == 0
    dest = tmp_path / "hf"
    exported = run_cli("export", str(manifest), "--state", str(state), "--format", "hf", "--to", str(dest),
                       cwd=tmp_path)
    assert exported.code == 0 and "left out: 1 rejected clip(s)" in exported.stderr, str(exported)
    rows = [json.loads(line) for line in (dest / "metadata.jsonl").read_text().splitlines()]
    assert sorted(row["file_name"] for row in rows) == ["cat.mp4", "dog.mp4"]


def test_the_jsonl_and_csv_exports_say_how_many_rejected_clips_they_leave_out(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """The hf export said "left out: 1 rejected clip(s)"; jsonl and csv left the row out without a word, so a
    dataset of 47 rows for a batch of 48 done jobs looked like a lost video (brief Q)."""
    manifest, state, _sim, keys = done_trio(tmp_path, provider)
    assert run_cli("reject", str(manifest), keys["owl"], "--reason", "r", "--state", str(state), cwd=tmp_path).code == 0
    for fmt in ("jsonl", "csv"):
        exported = run_cli("export", str(manifest), "--state", str(state), "--format", fmt, cwd=tmp_path)
        assert exported.code == 0 and "left out: 1 rejected clip(s)" in exported.stderr, str(exported)
        assert keys["owl"] not in exported.stdout and keys["cat"] in exported.stdout
    assert run_cli("accept", str(manifest), keys["owl"], "--state", str(state), cwd=tmp_path).code == 0
    again = run_cli("export", str(manifest), "--state", str(state), cwd=tmp_path)
    assert again.code == 0 and "left out" not in again.stderr and keys["owl"] in again.stdout, str(again)


def test_rejecting_a_job_an_edit_dropped_says_it_was_dropped(tmp_path: Path, provider: ProviderFactory) -> None:
    """The key of a clip the manifest no longer lists (a model dropped from the matrix) was answered "no job of trio
    has a key starting with …", of a key `runner show` shows done in that ledger (brief Q)."""
    manifest, state, sim, keys = done_trio(tmp_path, provider)
    manifest.write_text(manifest.read_text().replace("[cat, dog, owl]", "[cat, dog]"))
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0  # plans the edit
    for command in ("reject", "accept"):
        refused = run_cli(command, str(manifest), keys["owl"][:8], *(["--reason", "r"] if command == "reject" else []),
                          "--state", str(state), cwd=tmp_path)
        assert refused.code == 2, str(refused)
        assert f"{keys['owl']} is a job trio no longer lists" in refused.stderr, str(refused)
    unknown = run_cli("reject", str(manifest), "ffffffff", "--reason", "r", "--state", str(state), cwd=tmp_path)
    assert unknown.code == 2 and "no job of trio has a key starting with 'ffffffff'" in unknown.stderr, str(unknown)


def test_a_report_written_again_removes_the_videos_it_no_longer_shows(tmp_path: Path, provider: ProviderFactory) -> None:
    """`runner report --to DIR` again after a reject: the page left the clip out but DIR/videos/ kept its file, so a
    report folder shared (zipped, uploaded) still carried the rejected clip (brief Q). The report removes the videos
    it wrote before and no longer shows, as the hf export does; a file it did not write, or changed since, stays."""
    manifest, state, _sim, keys = done_trio(tmp_path, provider)
    dest = tmp_path / "report"
    first = run_cli("report", str(manifest), "--state", str(state), "--to", str(dest), cwd=tmp_path)
    assert first.code == 0, str(first)
    videos = dest / "videos"
    assert sorted(p.name for p in videos.rglob("*.mp4")) == ["cat.mp4", "dog.mp4", "owl.mp4"]
    (videos / "mine.mp4").write_bytes(b"my own clip")
    assert run_cli("reject", str(manifest), keys["owl"], keys["dog"], "--reason", "r", "--state", str(state),
                   cwd=tmp_path).code == 0
    (videos / "dog.mp4").unlink()
    (videos / "dog.mp4").write_bytes(b"edited by hand")  # changed since the report wrote it: kept
    again = run_cli("report", str(manifest), "--state", str(state), "--to", str(dest), cwd=tmp_path)
    assert again.code == 0, str(again)
    assert sorted(p.name for p in videos.rglob("*.mp4")) == ["cat.mp4", "dog.mp4", "mine.mp4"], str(again)
    assert "1 video(s) no longer shown removed" in again.stderr, str(again)
    assert keys["owl"] not in (dest / "index.html").read_text()
    assert (state / "outputs" / "trio" / "owl.mp4").exists()  # the stored original is untouched


def test_a_report_with_include_rejected_shows_the_rejected_clips_marked(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """`runner export` kept rejected clips with --include-rejected but `runner report` had no such option, so a page
    to review every clip again (rejected ones too) could not be written. It has it now: each rejected clip is shown
    and marked; written again without it, the report leaves the clip out and removes its video, as before."""
    manifest, state, _sim, keys = done_trio(tmp_path, provider)
    assert run_cli("reject", str(manifest), keys["owl"], "--reason", "r", "--state", str(state), cwd=tmp_path).code == 0
    dest = tmp_path / "report"
    shown = run_cli("report", str(manifest), "--state", str(state), "--to", str(dest), "--include-rejected",
                    cwd=tmp_path)
    assert shown.code == 0, str(shown)
    page = (dest / "index.html").read_text(encoding="utf-8")
    assert keys["owl"] in page and page.count("rejected in review") == 1, page
    assert sorted(p.name for p in (dest / "videos").rglob("*.mp4")) == ["cat.mp4", "dog.mp4", "owl.mp4"]
    again = run_cli("report", str(manifest), "--state", str(state), "--to", str(dest), cwd=tmp_path)
    assert again.code == 0 and "1 video(s) no longer shown removed" in again.stderr, str(again)
    assert keys["owl"] not in (dest / "index.html").read_text(encoding="utf-8")
    assert sorted(p.name for p in (dest / "videos").rglob("*.mp4")) == ["cat.mp4", "dog.mp4"]


def test_verify_restores_deleted_and_corrupted_files_and_reports_the_rest(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    manifest, state, sim, keys = done_trio(tmp_path, provider)
    folder = state / "outputs" / "trio"
    good = {name: (folder / name).read_bytes() for name in ("cat.mp4", "dog.mp4", "owl.mp4")}
    assert run_cli("verify", str(manifest), "--state", str(state), cwd=tmp_path, key=None).code == 0  # all fine: no key needed
    (folder / "cat.mp4").unlink()
    data = bytearray(good["dog.mp4"])
    data[100] ^= 0xFF
    (folder / "dog.mp4").write_bytes(bytes(data))
    check = run_cli("verify", str(manifest), "--state", str(state), "--check-only", cwd=tmp_path)
    assert check.code == 1 and "missing" in check.stdout and "damaged" in check.stdout, str(check)
    # The cat's recorded URL has expired: a fresh one is asked for (a test reaching into the ledger).
    with open_ledger(state) as ledger, ledger._conn.write() as db:
        db.execute("UPDATE jobs SET url_expires_at = 1 WHERE key = ?", (keys["cat"],))
    paid = sim.accepted()
    fixed = run_cli("verify", str(manifest), "--state", str(state), "--base-url", sim.base_url, cwd=tmp_path)
    assert fixed.code == 0, str(fixed)
    assert "2 restored, 0 not restored" in fixed.stdout
    assert {name: (folder / name).read_bytes() for name in good} == good
    assert sim.accepted() == paid  # nothing submitted
    assert sorted(p.name for p in folder.iterdir()) == ["cat.mp4", "dog.mp4", "owl.mp4"]

    (folder / "owl.mp4").unlink()
    with open_ledger(state) as ledger, ledger._conn.write() as db:
        db.execute("UPDATE jobs SET url_expires_at = 1, task_id = 'gone-task' WHERE key = ?", (keys["owl"],))
    lost = run_cli("verify", str(manifest), "--state", str(state), "--base-url", sim.base_url, cwd=tmp_path)
    assert lost.code == 1, str(lost)
    assert f"job {keys['owl']}: not restored: the provider no longer knows task gone-task" in lost.stderr


def test_a_regenerated_job_whose_submit_is_ambiguous_is_held_not_paid_again(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    manifest, state, sim, keys = done_trio(tmp_path, provider)
    assert run_cli("reject", str(manifest), keys["dog"], "--reason", "r", "--state", str(state), cwd=tmp_path).code == 0
    assert run_cli("regenerate", str(manifest), "--state", str(state), cwd=tmp_path).code == 0
    sim.sim.configure(p_drop=1.0)  # the provider creates the task, then the connection drops
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 4
    sim.sim.configure(p_drop=0.0)
    assert sim.accepted() == 4
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 4
    assert sim.accepted() == 4  # held for the operator, never resubmitted
    with open_ledger(state, readonly=True) as ledger:
        dog = ledger.get(keys["dog"])
        assert dog is not None and dog.state is JobState.IN_DOUBT and dog.sample == 1


def test_regenerate_of_a_manifest_edited_since_its_run_plans_the_edit_first(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    """The review sweep: after the manifest's model (here: its prompt) was changed, regenerate queued the old version's rejected clips;
    the next run planned the edit and never sent them: pending orphans, their videos moved aside. Regenerate plans
    the edit first, as a run would (nothing sent): the rejected clip's job is no longer the manifest's, so nothing
    is queued or moved; with the file put back, the clip is regenerated."""
    manifest, state, sim, keys = done_trio(tmp_path, provider)
    result = run_cli("reject", str(manifest), keys["cat"][:10], "--reason", "x", "--state", str(state), cwd=tmp_path)
    assert result.code == 0, str(result)
    original = manifest.read_text()
    manifest.write_text(original.replace("a quiet street", "a busy street"))  # every job a new one
    planned = run_cli("regenerate", str(manifest), "--state", str(state), cwd=tmp_path)
    assert planned.code == 0 and "planned the edit" in planned.stdout, str(planned)
    assert "no rejected clips in trio" in planned.stdout, str(planned)
    assert (state / "outputs" / "trio" / "cat.mp4").exists()  # nothing moved aside
    with open_ledger(state, readonly=True) as ledger:
        assert ledger.get(keys["cat"]).state is JobState.DONE  # type: ignore[union-attr]
    manifest.write_text(original)  # the file put back: planned again, regenerate goes on
    regen = run_cli("regenerate", str(manifest), "--state", str(state), cwd=tmp_path)
    assert regen.code == 0 and "1 rejected clip(s) will be generated again" in regen.stdout, str(regen)
    assert sim.accepted() == 3  # nothing sent by either


def test_accepting_a_clip_that_is_not_done_says_why_as_reject_does(tmp_path: Path, provider: ProviderFactory) -> None:
    """The review sweep: `accept` of a regenerated (pending) clip printed "0 clip(s) accepted" and exit 0, while
    `reject` of it says "skipped KEY: pending, not done" and exits 2."""
    manifest, state, _sim, keys = done_trio(tmp_path, provider)
    where = ["--state", str(state)]
    assert run_cli("reject", str(manifest), keys["cat"][:10], "--reason", "x", *where, cwd=tmp_path).code == 0
    assert run_cli("regenerate", str(manifest), *where, cwd=tmp_path).code == 0
    pending = run_cli("accept", str(manifest), keys["cat"][:10], *where, cwd=tmp_path)
    assert pending.code == 2 and f"skipped {keys['cat']}: pending, not done" in pending.stderr, str(pending)
    both = run_cli("accept", str(manifest), keys["cat"][:10], keys["dog"][:10], *where, cwd=tmp_path)
    assert both.code == 0 and "1 clip(s) accepted" in both.stdout and "skipped" in both.stderr, str(both)


def test_a_second_regenerate_counts_the_samples_the_first_one_queued(tmp_path: Path, provider: ProviderFactory) -> None:
    """The loop hunt: with room in the budget for one more sample, `regenerate` queued the cat's, then a second
    `regenerate` (the dog rejected meanwhile, no run between) checked the spend so far plus the dog alone and queued
    it too: the next run paid for one and stopped at the budget (exit 3), the other clip's video moved aside and no
    new one made. What is already queued for the next run (pending) counts, so the second one is refused."""
    manifest, state, sim, keys = done_trio(tmp_path, provider)
    where = ["--state", str(state), "--budget", f"{THREE_JOBS_USD + ONE:.4f}"]
    assert run_cli("reject", str(manifest), keys["cat"], "--reason", "x", "--state", str(state), cwd=tmp_path).code == 0
    assert run_cli("regenerate", str(manifest), *where, cwd=tmp_path).code == 0
    assert run_cli("reject", str(manifest), keys["dog"], "--reason", "y", "--state", str(state), cwd=tmp_path).code == 0
    second = run_cli("regenerate", str(manifest), *where, cwd=tmp_path)
    assert second.code == 2 and "already queued" in second.stderr, str(second)
    dog = state / "outputs" / "trio" / "dog.mp4"
    assert dog.exists() and not (state / "outputs" / "trio" / "_rejected" / f"{keys['dog']}.0.mp4").exists()
    ran = run_cli(*run_args("run", manifest, state, *sim.engine_args(), "--budget", f"{THREE_JOBS_USD + ONE:.4f}"),
                  cwd=tmp_path)
    assert ran.code == 0 and sim.accepted() == 4, str(ran)


def test_ls_says_which_done_clips_are_rejected_and_lists_them_alone(tmp_path: Path, provider: ProviderFactory) -> None:
    """The loop hunt: after `reject`, `runner ls` showed the rejected clip as a plain `done` (in --json too) and
    `--only rejected` was refused: no command listed the keys to `accept` back or to check before `regenerate`."""
    manifest, state, _sim, keys = done_trio(tmp_path, provider)
    where = ["--state", str(state)]
    assert run_cli("reject", str(manifest), keys["cat"], "--reason", "x", *where, cwd=tmp_path).code == 0
    listed = run_cli("ls", str(manifest), "--only", "done", *where, cwd=tmp_path)
    [cat] = [line for line in listed.stdout.splitlines() if line.startswith(keys["cat"])]
    [dog] = [line for line in listed.stdout.splitlines() if line.startswith(keys["dog"])]
    assert "rejected" in cat and "rejected" not in dog, listed.stdout
    rows = [json.loads(line) for line in run_cli("ls", str(manifest), "--json", *where, cwd=tmp_path).stdout.splitlines()]
    assert {row["key"]: row["review"] for row in rows}[keys["cat"]] == "rejected"
    only = run_cli("ls", str(manifest), "--only", "rejected", *where, cwd=tmp_path)
    assert only.code == 0 and [line.split()[0] for line in only.stdout.splitlines()[1:]] == [keys["cat"]], str(only)


def test_verify_reports_a_video_linked_outside_the_state_directory_and_goes_on(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    """OS sweep: a stored video replaced by a link leading outside the state directory stopped the whole of
    `runner verify` (exit 3) at that job; it is now that one job's problem, reported, and the others are checked."""
    manifest, state, sim, keys = done_trio(tmp_path, provider)
    folder = state / "outputs" / "trio"
    outside = tmp_path / "elsewhere.mp4"
    cat = b"someone else's file"
    outside.write_bytes(cat)
    (folder / "cat.mp4").unlink()
    (folder / "cat.mp4").symlink_to(outside)
    (folder / "dog.mp4").unlink()
    check = run_cli("verify", str(manifest), "--state", str(state), "--check-only", cwd=tmp_path)
    assert check.code == 1, str(check)
    assert "3 stored video(s) checked in trio: 2 missing or damaged" in check.stdout, str(check)
    fixed = run_cli("verify", str(manifest), "--state", str(state), "--base-url", sim.base_url, cwd=tmp_path)
    assert fixed.code == 1, str(fixed)
    assert (folder / "dog.mp4").is_file() and not (folder / "dog.mp4").is_symlink()  # the others go on
    assert f"job {keys['cat']}: not restored:" in fixed.stderr and "outside the state directory" in fixed.stderr
    assert "1 restored, 1 not restored" in fixed.stdout, str(fixed)
    assert outside.read_bytes() == cat  # never written through the link


def test_a_report_written_again_keeps_a_video_whose_stored_original_is_gone(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """The stored original of a done job removed (a disk cleaned by hand): the report's hard link under DIR/videos/ is
    the last copy of a paid video. Written again, the report no longer shows the job (its file is missing) and removed
    that link as a video it wrote and no longer shows (brief T): it stays while the state directory holds no copy."""
    manifest, state, _sim, _keys = done_trio(tmp_path, provider)
    dest = tmp_path / "report"
    assert run_cli("report", str(manifest), "--state", str(state), "--to", str(dest), cwd=tmp_path).code == 0
    owl = (dest / "videos" / "owl.mp4").read_bytes()
    (state / "outputs" / "trio" / "owl.mp4").unlink()
    again = run_cli("report", str(manifest), "--state", str(state), "--to", str(dest), cwd=tmp_path)
    assert again.code == 0 and "have no file any more" in again.stderr, str(again)
    assert (dest / "videos" / "owl.mp4").read_bytes() == owl, str(again)  # the only copy left
    assert "removed" not in again.stderr and "owl.mp4" in again.stderr, str(again)  # said kept, and why


def test_a_report_whose_videos_folder_links_into_the_state_directory_never_removes_a_stored_original(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """DIR/videos made a symbolic link to the state directory's outputs (to save room): the report wrote its record
    there, and written again after a reject removed the rejected clip's stored original, the paid video itself, as a
    file it had written (brief T). Now a report writes nothing through a link out of its folder: refused (exit 2),
    nothing written into the outputs folder, every stored original kept."""
    manifest, state, _sim, keys = done_trio(tmp_path, provider)
    dest = tmp_path / "report"
    dest.mkdir()
    (dest / "videos").symlink_to(state / "outputs" / "trio")
    stored = sorted(path.name for path in (state / "outputs" / "trio").iterdir())
    first = run_cli("report", str(manifest), "--state", str(state), "--to", str(dest), cwd=tmp_path)
    assert first.code == 2 and "is a link to" in first.stderr, str(first)
    assert run_cli("reject", str(manifest), keys["owl"], "--reason", "r", "--state", str(state), cwd=tmp_path).code == 0
    again = run_cli("report", str(manifest), "--state", str(state), "--to", str(dest), cwd=tmp_path)
    assert again.code == 2, str(again)
    assert sorted(path.name for path in (state / "outputs" / "trio").iterdir()) == stored  # no record, none removed


def test_a_report_whose_videos_folder_links_outside_it_writes_and_removes_nothing_there(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """DIR/videos a symbolic link to a folder outside DIR (here another report's videos, shared by hand): the report
    wrote its videos and its record there, and removed that folder's videos it did not show (the other report's owl
    after a reject). Now it is refused (exit 2), naming the link and the fix, and nothing there changes."""
    manifest, state, _sim, keys = done_trio(tmp_path, provider)
    first = tmp_path / "first"
    assert run_cli("report", str(manifest), "--state", str(state), "--to", str(first), cwd=tmp_path).code == 0
    (first / "videos" / "mine.txt").write_text("the user's own file\n", encoding="utf-8")
    before = {path.name: path.read_bytes() for path in (first / "videos").iterdir()}
    assert "owl.mp4" in before
    assert run_cli("reject", str(manifest), keys["owl"], "--reason", "r", "--state", str(state), cwd=tmp_path).code == 0
    dest = tmp_path / "second"
    dest.mkdir()
    (dest / "videos").symlink_to(first / "videos", target_is_directory=True)
    refused = run_cli("report", str(manifest), "--state", str(state), "--to", str(dest), cwd=tmp_path)
    assert refused.code == 2, str(refused)
    assert f"{dest / 'videos'} is a link to {first / 'videos'}" in refused.stderr, str(refused)
    assert "remove the link" in refused.stderr.lower(), str(refused)
    assert {path.name: path.read_bytes() for path in (first / "videos").iterdir()} == before
    assert sorted(path.name for path in dest.iterdir()) == ["videos"]  # nothing written, not even the page


def test_an_hf_export_written_again_keeps_a_video_whose_stored_original_is_gone(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """The hf export's hard link is the last copy of a paid video once its stored original is removed; exported again,
    the job is left out as missing and the export removed that link as a file it no longer exports (brief T)."""
    manifest, state, _sim, _keys = done_trio(tmp_path, provider)
    dest = tmp_path / "hf"
    hf = ("export", str(manifest), "--state", str(state), "--format", "hf", "--to", str(dest))
    assert run_cli(*hf, cwd=tmp_path).code == 0
    owl = (dest / "owl.mp4").read_bytes()
    (state / "outputs" / "trio" / "owl.mp4").unlink()
    again = run_cli(*hf, cwd=tmp_path)
    assert again.code == 0, str(again)
    assert (dest / "owl.mp4").read_bytes() == owl, str(again)  # the only copy left
