"""Planning manifests into the ledger, and reading jobs back."""

from __future__ import annotations

import datetime
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.errors import ManifestError
from runner.jobs import JobSpec, JobState
from runner.ledger import SqliteLedger, open_ledger

MODEL = "kling-v3.0-pro-t2v"


def spec(i: int, *, output: str | None = None, prompt: str = "city") -> JobSpec:
    return JobSpec.build(
        model=MODEL,
        request={"prompt": f"{prompt} {i} at night, slow pan", "duration": 5, "sound": False},
        vars={"city": f"c{i}", "i": i},
        repeat=1,
        output=output or f"c{i}/night.mp4",
        estimated_usd=0.56,
    )


def specs(n: int, start: int = 0, **kwargs: str) -> Iterator[JobSpec]:
    for i in range(start, start + n):
        yield spec(i, **kwargs)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    with open_ledger(tmp_path / "state") as opened:
        yield opened


def finish(ledger: SqliteLedger, key: str) -> None:
    attempt = ledger.mark_submitting(key)
    ledger.mark_running(key, attempt, task_id=f"t-{key}", http_status=200)  # one task id per job
    ledger.mark_succeeded(key, video_url="u", url_expires_at=None, debug={})
    ledger.mark_done(key, path="outputs/a/x.mp4", sha256="0" * 64, bytes=10)


def test_register_is_idempotent_and_keeps_states(ledger: SqliteLedger) -> None:
    """Planning the same manifest again adds nothing and keeps every job's progress."""
    assert ledger.manifest_digest("a") is None
    assert ledger.register("a", "d1", specs(5)) == 5
    finish(ledger, spec(0).key)
    assert ledger.register("a", "d2", specs(5), batch=2) == 5
    assert ledger.total() == 5 and ledger.total("a") == 5
    assert ledger.counts("a")[JobState.DONE] == 1
    assert ledger.counts("a")[JobState.PENDING] == 4
    assert ledger.manifest_digest("a") == "d2"


def test_two_manifests_share_a_job_and_pay_once(ledger: SqliteLedger) -> None:
    """The same video asked by two manifests is one job, with one output path per manifest."""
    ledger.register("a", "d", specs(3))
    ledger.register("b", "d", [spec(2, output="shared.mp4"), spec(7)])
    shared = spec(2).key
    assert ledger.total() == 4
    assert ledger.total("a") == 3 and ledger.total("b") == 2
    finish(ledger, shared)
    assert ledger.counts("a")[JobState.DONE] == 1 and ledger.counts("b")[JobState.DONE] == 1
    in_a, in_b = ledger.get(shared, "a"), ledger.get(shared, "b")
    assert in_a is not None and in_a.output == "c2/night.mp4"
    assert in_b is not None and in_b.output == "shared.mp4"
    assert ledger.get(spec(0).key, "b") is None
    whole = ledger.get(shared)
    assert whole is not None and whole.output is None
    assert ledger.target_output("b", shared) == "shared.mp4"
    assert ledger.target_output("b", spec(0).key) is None
    assert ledger.targets_of(shared) == [("a", "c2/night.mp4"), ("b", "shared.mp4")]
    assert ledger.targets_of(spec(7).key) == [("b", spec(7).output)]
    assert ledger.spent_usd("a") == pytest.approx(0.56) == ledger.spent_usd("b")


def test_failing_job_stream_plans_nothing(ledger: SqliteLedger) -> None:
    """When expansion raises midway, the whole registration is rolled back and re-raised."""
    ledger.register("a", "d1", specs(3))

    def broken() -> Iterator[JobSpec]:
        yield from specs(2500, start=10)
        raise ManifestError("bad job", path="m.yaml", line=7)

    with pytest.raises(ManifestError, match="bad job"):
        ledger.register("a", "d2", broken(), batch=1000)
    with pytest.raises(ManifestError):
        ledger.register("b", "d", broken(), batch=1000)
    assert ledger.total() == 3 and ledger.total("a") == 3 and ledger.total("b") == 0
    assert ledger.manifest_digest("a") == "d1" and ledger.manifest_digest("b") is None


def test_jobs_dropped_from_a_manifest_leave_its_targets(ledger: SqliteLedger) -> None:
    """Jobs removed from a manifest no longer count for it; the jobs themselves stay."""
    ledger.register("a", "d1", specs(5))
    ledger.register("a", "d2", specs(3))
    assert ledger.total("a") == 3 and ledger.total() == 5
    assert [job.key for job in ledger.iter_jobs("a")] == [spec(i).key for i in range(3)]


def test_edited_prompts_reuse_output_names(ledger: SqliteLedger) -> None:
    """After editing the prompt, the new jobs take over the old output names."""
    ledger.register("a", "d1", specs(3))
    ledger.register("a", "d2", specs(3, prompt="village"))
    assert ledger.total() == 6 and ledger.total("a") == 3
    outputs = {job.output: job.request["prompt"] for job in ledger.iter_jobs("a")}
    assert outputs == {f"c{i}/night.mp4": f"village {i} at night, slow pan" for i in range(3)}


def test_two_jobs_with_one_output_are_refused(ledger: SqliteLedger) -> None:
    """Two jobs of one manifest sharing a file or a key are refused, and nothing is planned."""
    with pytest.raises(ManifestError, match="share a key or an output"):
        ledger.register("a", "d", [spec(0, output="x.mp4"), spec(1, output="x.mp4")])
    with pytest.raises(ManifestError, match="share a key or an output"):
        ledger.register("a", "d", [spec(0), spec(1), spec(0, output="again.mp4")])
    assert ledger.total() == 0 and ledger.manifest_digest("a") is None


def test_request_and_vars_round_trip(ledger: SqliteLedger) -> None:
    """The exact request body and the variables come back; YAML dates become strings."""
    job = JobSpec.build(
        model=MODEL,
        request={"prompt": "Zürich ☀", "duration": 10, "multi_prompt": None},
        vars={"day": datetime.date(2024, 5, 1), "city": "Zürich"},
        repeat=2,
        output="z.mp4",
        estimated_usd=1.12,
    )
    ledger.register("a", "d", [job])
    record = ledger.get(job.key, "a")
    assert record is not None
    assert record.request == job.request and record.repeat == 2 and record.model == MODEL
    assert record.vars == {"day": "2024-05-01", "city": "Zürich"}
    assert record.estimated_usd == 1.12 and record.spent_usd == 0.0 and record.attempts == 0


def test_streaming_reads_in_planning_order(ledger: SqliteLedger) -> None:
    """iter_jobs and pending_batch stream jobs in the manifest's order, filtered by state."""
    ledger.register("a", "d", specs(2500))
    keys = [spec(i).key for i in range(2500)]
    assert [job.key for job in ledger.iter_jobs("a")] == keys
    assert [job.key for job in ledger.iter_jobs()] == keys
    finish(ledger, keys[1500])
    finish(ledger, keys[10])
    assert [job.key for job in ledger.iter_jobs("a", [JobState.DONE])] == [keys[10], keys[1500]]
    both = [job.key for job in ledger.iter_jobs(None, {JobState.DONE, JobState.PENDING})]
    assert both == keys
    assert list(ledger.iter_jobs("a", [])) == []
    seen: list[str] = []
    cursor = 0
    while batch := ledger.pending_batch("a", limit=700, after_rowid=cursor):
        cursor = batch[-1][0]
        seen.extend(job.key for _, job in batch)
    assert seen == [k for k in keys if k not in (keys[10], keys[1500])]
    assert [job.key for _, job in ledger.pending_batch(None, limit=2)] == keys[:2]


def test_states_of_known_and_unknown_keys(ledger: SqliteLedger) -> None:
    """states_of answers for many keys at once and leaves unknown keys out."""
    ledger.register("a", "d", specs(1200))
    finish(ledger, spec(1100).key)
    asked = [spec(i).key for i in range(1200)] + ["unknown"]
    states = ledger.states_of(asked)
    assert len(states) == 1200 and "unknown" not in states
    assert states[spec(1100).key] is JobState.DONE and states[spec(0).key] is JobState.PENDING


class Live:
    """Counts the JobSpecs alive right now, and the most ever alive at once."""

    now = 0
    peak = 0


class CountedSpec(JobSpec):
    __slots__ = ()

    def __del__(self) -> None:
        Live.now -= 1


def counted_specs(n: int) -> Iterator[JobSpec]:
    for i in range(n):
        job = CountedSpec.build(
            model=MODEL,
            request={"prompt": f"city {i} at night, slow pan", "duration": 5},
            vars={"city": f"c{i}"},
            repeat=1,
            output=f"c{i}.mp4",
            estimated_usd=0.56,
        )
        Live.now += 1
        Live.peak = max(Live.peak, Live.now)
        yield job
        del job


def test_register_streams_a_large_manifest(tmp_path: Path) -> None:
    """200k jobs from a generator are planned a batch at a time, never all held at once."""
    n = 200_000
    Live.now = Live.peak = 0
    with open_ledger(tmp_path) as led:
        started = time.perf_counter()
        assert led.register("big", "d", counted_specs(n), batch=2000) == n
        elapsed = time.perf_counter() - started
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"\nregister {n} jobs: {elapsed:.1f} s; at most {Live.peak} jobs alive;"
            f" peak RSS of the test process {peak_rss:.0f} MB"
        )
        assert Live.peak <= 2 * 2000
        assert led.counts("big")[JobState.PENDING] == n
