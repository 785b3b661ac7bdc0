"""`plan` of a manifest whose ledger has no job yet (issue 14 item 5): no key looked up, the same figures.

A million-job plan into a new state directory used to ask the ledger for the state of every key
(2,000 lookups of 500 keys, every answer empty) and sum its costs job by job in Python. A ledger with
no job has no state to tell: the plan now counts such a batch as new without a lookup. The figures
must be exactly those of the job-by-job path (the one `plan --jobs` takes), costs to the last bit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.jobs import JobSpec
from runner.ledger import SqliteLedger, open_ledger
from runner.manifest import expand, load_manifest
from runner.service.planning import plan

MANIFEST = """\
name: m
prompt: "A {thing} at dawn"
matrix:
  thing: {file: things.txt}
  duration: [5, 10]
  model: [kling-v3.0-std-t2v, kling-v3.0-pro-t2v]
pricing: {kling-v3.0-pro-t2v: {per_second: 0.1123, per_second_sound: 0.1677}}
"""


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    (tmp_path / "things.txt").write_text("".join(f"thing {i}\n" for i in range(700)))
    return path


def _figures(found: object) -> dict[str, object]:
    return {name: getattr(found, name) for name in ("jobs", "counts", "cost_new", "cost_all", "per_model",
                                                    "unpriced", "renames")}


def test_plan_of_a_new_ledger_looks_up_no_key_and_gives_the_job_by_job_figures(
    tmp_path: Path, manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[int] = []
    original = SqliteLedger.states_of

    def counted(self: SqliteLedger, keys: list[str]) -> object:
        lookups.append(len(keys))
        return original(self, keys)

    monkeypatch.setattr(SqliteLedger, "states_of", counted)
    with open_ledger(tmp_path / "state"):
        pass  # a ledger with no job yet
    fast = plan(manifest, tmp_path / "state")
    assert lookups == []
    rows: list[dict[str, object]] = []
    slow = plan(manifest, tmp_path / "state", each_job=rows.append)
    assert len(rows) == 2800
    assert _figures(fast) == _figures(slow)
    assert fast.jobs == 2800 and fast.counts["pending"] == 2800
    assert fast.per_model == {"kling-v3.0-std-t2v": 1400, "kling-v3.0-pro-t2v": 1400}
    assert fast.unpriced == {"kling-v3.0-std-t2v": 1400} or not fast.unpriced
    total = 0.0
    for job in expand(load_manifest(manifest)):  # the sum in job order, as the loop adds
        total += job.estimated_usd
    assert fast.cost_all == fast.cost_new == total > 0


def test_plan_of_a_ledger_with_jobs_still_looks_each_key_up(tmp_path: Path, manifest: Path) -> None:
    jobs: list[JobSpec] = list(expand(load_manifest(manifest)))
    with open_ledger(tmp_path / "state") as ledger:
        ledger.register("m", "d", jobs[:10])
        attempt = ledger.mark_submitting(jobs[3].key)
        ledger.mark_running(jobs[3].key, attempt, task_id="t", http_status=200)
    found = plan(manifest, tmp_path / "state")
    assert found.counts["running"] == 1 and found.counts["pending"] == 2799
    assert found.cost_new == pytest.approx(found.cost_all - jobs[3].estimated_usd)


def test_plan_of_a_done_ledger_looks_each_key_up_once_not_twice(
    tmp_path: Path, manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every job done (a batch run to the end, planned again): after a mostly done batch, the paths are asked
    first and a done job's path stands for its state, one look-up per key instead of a state and a path."""
    import sqlite3

    from runner.layout import manifest_folder

    jobs: list[JobSpec] = list(expand(load_manifest(manifest)))
    with open_ledger(tmp_path / "state") as ledger:
        ledger.register("m", "d", jobs)
    folder = manifest_folder("m")
    raw = sqlite3.connect(tmp_path / "state" / "ledger.db")
    with raw:
        raw.executemany("UPDATE jobs SET state = 'done', path = ? WHERE key = ?",
                        [(folder + job.output, job.key) for job in jobs[:2500]])
        raw.execute("UPDATE jobs SET path = ? WHERE key = ?", (folder + "moved.mp4", jobs[1700].key))
        raw.execute("UPDATE jobs SET state = 'failed' WHERE key = ?", (jobs[2700].key,))
    raw.close()
    asked: list[tuple[str, int]] = []
    for name in ("states_of", "stored_paths"):
        original = getattr(SqliteLedger, name)

        def counted(self: SqliteLedger, keys: list[str], _name: str = name, _original: object = original) -> object:
            asked.append((_name, len(keys)))
            return _original(self, keys)  # type: ignore[operator]

        monkeypatch.setattr(SqliteLedger, name, counted)
    found = plan(manifest, tmp_path / "state")
    assert found.counts["done"] == 2500 and found.counts["failed"] == 1 and found.counts["pending"] == 299
    assert found.renames == 1 and found.cost_new == pytest.approx(sum(job.estimated_usd for job in jobs[2500:]
                                                                      if job.key != jobs[2700].key))
    # Batches of 500: the first asks states then paths; the next four (all done) paths only; the last (none
    # done, the one before was) paths, then the states of the 300 keys without one.
    assert asked == [("states_of", 500), ("stored_paths", 500), *[("stored_paths", 500)] * 4,
                     ("stored_paths", 300), ("states_of", 300)]
    rows: list[dict[str, object]] = []
    slow = plan(manifest, tmp_path / "state", each_job=rows.append)
    assert {name: v for name, v in _figures(slow).items() if name != "renames"} == {
        name: v for name, v in _figures(found).items() if name != "renames"}
