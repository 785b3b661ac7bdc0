"""The review loop's library (runner.review): prefixes that must be unambiguous, a regenerate that
stopped between moving the video aside and its ledger step, and what the static report leaves out."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from runner.budget import Budget
from runner.errors import UsageError
from runner.jobs import JobSpec, JobState
from runner.ledger import MemoryLedger
from runner.reporting.gallery import write_gallery
from runner.review.page import Filters, list_rows
from runner.review.regenerate import plan_regeneration, reject_jobs, requeue
from runner.review.select import resolve_keys
from runner.storage.memory import MemoryStore

VIDEO = b"\x00\x00\x00\x18ftypmp42" + b"x" * 40


def _ledger(n: int = 40, repeats: int = 1) -> tuple[MemoryLedger, MemoryStore, list[str]]:
    ledger, store = MemoryLedger(), MemoryStore()
    specs = [JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"p{i}", "duration": 5}, vars={"i": i},
                           repeat=r, output=f"c{i}-{r}.mp4", estimated_usd=0.5)
             for i in range(n) for r in range(1, repeats + 1)]
    ledger.register("m", "d", specs)
    for spec in specs:
        attempt = ledger.mark_submitting(spec.key)
        assert attempt is not None
        ledger.mark_running(spec.key, attempt, task_id=f"t-{spec.key[:8]}", http_status=200)
        ledger.mark_succeeded(spec.key, video_url="https://v/x", url_expires_at=None, debug={})
        rel = f"outputs/m/{spec.output}"
        with store.open_sink(rel) as sink:
            sink.write(VIDEO)
            sink.commit()
        ledger.mark_done(spec.key, path=rel, sha256=hashlib.sha256(VIDEO).hexdigest(), bytes=len(VIDEO))
    return ledger, store, [s.key for s in specs]


def test_an_ambiguous_prefix_lists_its_matches_and_resolves_nothing() -> None:
    ledger, _store, keys = _ledger()
    shared = next(k[:1] for k in keys if sum(o.startswith(k[:1]) for o in keys) > 1)
    with pytest.raises(UsageError) as caught:
        resolve_keys(ledger, "m", [keys[0], shared])
    matches = [k for k in keys if k.startswith(shared)]
    assert f"{shared!r} matches {len(matches)} jobs of m" in str(caught.value)
    assert matches[0][:16] in str(caught.value)
    assert resolve_keys(ledger, "m", [keys[0][:12], keys[0].upper()]) == [keys[0]]
    with pytest.raises(UsageError, match="no job of m has a key starting with 'zz'"):
        resolve_keys(ledger, "m", ["zz"])


def test_a_regenerate_stopped_after_the_move_finishes_next_time() -> None:
    ledger, store, keys = _ledger(2)
    rejected, skipped = reject_jobs(ledger, "m", [keys[0], keys[0]], "bad")
    assert rejected == [keys[0]] and skipped == [f"{keys[0]}: already rejected"]
    plan = plan_regeneration(ledger, "m")
    assert [job.key for job in plan.jobs] == [keys[0]] and plan.cost_usd == pytest.approx(0.5)
    kept = f"outputs/m/_rejected/{keys[0]}.0.mp4"
    store.move("outputs/m/c0-1.mp4", kept)  # the move happened, then the process died
    assert requeue(ledger, store, "m", plan_regeneration(ledger, "m").jobs) == [(keys[0], kept)]
    job = ledger.get(keys[0])
    assert job is not None and job.state is JobState.PENDING and job.sample == 1
    assert ledger.rejections(keys[0])[0].kept_path == kept
    assert store.files[kept] == VIDEO and not store.exists("outputs/m/c0-1.mp4")


def test_the_budget_counts_every_sample() -> None:
    ledger, _store, keys = _ledger(2)
    reject_jobs(ledger, "m", keys, "bad")
    plan = plan_regeneration(ledger, "m")
    assert plan.spent_usd == pytest.approx(1.0) and plan.cost_usd == pytest.approx(1.0)
    plan.check_budget(Budget(2.0), "m")
    with pytest.raises(UsageError, match=r"up to \$1.00, but --budget 1.5 leaves \$0.50"):
        plan.check_budget(Budget(1.5), "m")


def test_the_static_report_leaves_rejected_clips_out(tmp_path: Path) -> None:
    ledger, store, keys = _ledger(3)
    reject_jobs(ledger, "m", [keys[1]], "bad")
    result = write_gallery(ledger, "m", tmp_path / "r", store=store)
    page = (tmp_path / "r" / "index.html").read_text()
    assert result.jobs == 2 and keys[1] not in page and keys[0] in page


def test_review_rows_put_repeats_side_by_side_and_filter() -> None:
    ledger, _store, keys = _ledger(30, repeats=3)
    reject_jobs(ledger, "m", [keys[0]], "bad")
    listing = list_rows(ledger.iter_jobs("m"), Filters(), page_size=10)
    assert listing.pages == 3 and listing.total_jobs == 89
    assert [len(row) for row in listing.rows] == [2] + [3] * 9
    assert {job.vars["i"] for job in listing.rows[1]} == {1}
    only = list_rows(ledger.iter_jobs("m"), Filters.from_query("state=rejected"))
    assert [job.key for row in only.rows for job in row] == [keys[0]]
    one = list_rows(ledger.iter_jobs("m"), Filters.from_query("var=i%3D7&state=done"))
    assert [len(row) for row in one.rows] == [3]


def test_regenerating_a_shared_job_clears_the_other_manifests_copy() -> None:
    ledger, store, keys = _ledger(2)
    spec = JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": "p0", "duration": 5}, vars={"i": 0},
                         repeat=1, output="again.mp4", estimated_usd=0.5)
    assert spec.key == keys[0]
    ledger.register("other", "d", [spec])
    store.link("outputs/m/c0-1.mp4", "outputs/other/again.mp4")
    reject_jobs(ledger, "m", [keys[0]], "bad")
    kept = f"outputs/m/_rejected/{keys[0]}.0.mp4"
    assert requeue(ledger, store, "m", plan_regeneration(ledger, "m").jobs) == [(keys[0], kept)]
    assert not store.exists("outputs/other/again.mp4") and not store.exists("outputs/m/c0-1.mp4")
    assert store.files[f"outputs/m/_rejected/{keys[0]}.0.mp4"] == VIDEO


def test_status_counts_rejected_clips_next_to_done() -> None:
    """`runner status` says how many done clips are rejected (awaiting `runner regenerate`); --json carries it."""
    from runner.reporting.inspect import status_dict, status_lines, status_summary

    ledger, _, keys = _ledger(5)
    reject_jobs(ledger, "m", keys[:2], "hands")
    ledger.accept(keys[2])
    summary = status_summary(ledger, "m", now=0.0)
    data = status_dict(summary)
    assert (data["counts"]["done"], data["rejected"], data["accepted"]) == (5, 2, 1)
    [done_row] = [line for line in status_lines(summary) if line.strip().startswith("done")]
    assert "2 rejected" in done_row, done_row
    assert any("runner regenerate" in line for line in status_lines(summary))


def test_a_prefix_shared_with_many_jobs_of_another_manifest_is_never_resolved_to_one_of_two() -> None:
    """The loop hunt: a prefix was looked up among the ledger's first 50 keys starting with it, then narrowed to the
    manifest: on a ledger shared with a big manifest, a prefix matching two jobs of m, one of them past those 50,
    resolved to the other one alone (`reject m 3f …` rejected, `retry` paid for, a job the prefix did not single
    out). It is ambiguous, whatever else the ledger holds."""
    ledger, _store, keys = _ledger()
    ledger.register("big", "d2", [JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"b{i}", "duration": 5},
                                                vars={"i": i}, repeat=1, output=f"b{i}.mp4", estimated_usd=0.5)
                                  for i in range(3000)])
    every = sorted(ledger.find_keys("", limit=10_000))
    for prefix in "0123456789abcdef":
        matching = [k for k in every if k.startswith(prefix)]
        ours = [matching.index(k) for k in keys if k.startswith(prefix)]
        if sum(i < 50 for i in ours) == 1 and max(ours) >= 50:
            break
    else:
        pytest.fail("no prefix has one job of m among its first 50 matches and another past them")  # the keys are fixed
    with pytest.raises(UsageError, match=f"{prefix!r} matches"):
        resolve_keys(ledger, "m", [prefix])
