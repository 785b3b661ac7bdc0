"""The answers Novita's docs list or leave open, each produced by the simulator on a loopback port, and what
`runner run` makes of them: every documented refusal, a CREATE_TASK_FAILED that created its task, a task id
answered twice, a per-account task cap, and a task-result that hands out one URL for good. Whatever the answer,
nothing is paid twice without being said, and no video paid for is lost or stored under another job's name."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from runner.ledger import open_ledger
from runner.simulator import ManualClock, SimConfig, Simulator, SimulatorThread
from runner.testing import make_png

from test_cli_support import (
    THREE_JOBS,
    Provider,
    ProviderFactory,
    counts,
    provider,
    run_args,
    run_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest


def _videos(state: Path) -> dict[str, str]:
    """sha256 of every MP4 stored under ``state``, by name."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in state.rglob("*.mp4")}


def _run(tmp_path: Path, sim: Provider, manifest: Path, state: Path, *extra: str) -> int:
    result = run_cli(*run_args("run", manifest, state, *sim.engine_args(*extra)), cwd=tmp_path)
    return result.code


@pytest.mark.parametrize(
    ("refusal", "code", "held", "sent_later"),
    [
        ("400 ILLEGAL_PROMPT", 1, "failed", False),  # refused for good: the same body is never sent again
        ("400 BILLING_BALANCE_NOT_ENOUGH", 3, "pending", True),  # the whole run stops, nothing lost
        ("402 INSUFFICIENT_BALANCE", 3, "pending", True),  # any 402 reads as the balance
        ("403 API_NOT_ALLOWED", 2, "pending", True),  # the key is not allowed: stop
        ("403 FEATURE_NOT_ALLOWED", 2, "pending", True),
        ("500 BILLING_FAILED", 4, "in_doubt", False),  # a 5xx other than CREATE_TASK_FAILED may have made the task
        ("500 TASK_FAILED", 4, "in_doubt", False),
    ],
)
def test_each_documented_refusal_ends_the_run_as_the_error_table_says(
    tmp_path: Path, provider: ProviderFactory, refusal: str, code: int, held: str, sent_later: bool
) -> None:
    """Every submit answered ``refusal``: the run's exit code and the jobs' state follow the error table; once the
    provider answers again, a stopped run's jobs are sent and done, a refused or in-doubt job is not sent again."""
    sim = provider(p_refused=1.0, refusal=refusal)
    manifest, state = write_manifest(tmp_path), tmp_path / "state"
    assert _run(tmp_path, sim, manifest, state) == code
    assert counts(state) == {held: 3}
    assert sim.accepted() == 0
    sim.sim.configure(p_refused=0.0)
    again = _run(tmp_path, sim, manifest, state)
    if sent_later:
        assert (again, counts(state), sim.accepted()) == (0, {"done": 3}, 3)
    else:
        assert (again, counts(state), sim.accepted()) == (code, {held: 3}, 0)


@pytest.mark.parametrize(
    "knobs",
    [{"p_drop": 1.0}, {"p_malformed": 1.0}, {"p_gateway": 1.0, "gateway_created_fraction": 1.0},
     {"p_long_task_id": 1.0}],
    ids=["dropped-after-the-body", "200-without-a-task-id", "gateway-page-after-creating", "implausible-task-id"],
)
def test_each_answer_that_may_hide_a_paid_task_holds_its_job_and_is_never_paid_again(
    tmp_path: Path, provider: ProviderFactory, knobs: dict[str, float]
) -> None:
    """Every submit paid for and answered without a usable id: the jobs are held in doubt (exit 4), and neither that
    run nor the next one, against a provider that answers well again, sends their bodies a second time."""
    sim = provider(**knobs)
    manifest, state = write_manifest(tmp_path), tmp_path / "state"
    assert _run(tmp_path, sim, manifest, state) == 4
    assert counts(state) == {"in_doubt": 3} and sim.accepted() == 3 and sim.max_per_body() == 1
    sim.sim.configure(**{name: 0.0 for name in knobs if name.startswith("p_")})
    assert _run(tmp_path, sim, manifest, state) == 4
    assert counts(state) == {"in_doubt": 3} and sim.accepted() == 3


def test_a_task_id_answered_twice_holds_the_later_jobs_in_doubt(tmp_path: Path, provider: ProviderFactory) -> None:
    """Each submit after the first is paid for but answered with the first task's id (a replayed answer): the first
    job gets its video, the others are held in doubt (their own tasks' ids never came), and no job records or stores
    the first job's task as its own."""
    sim = provider(p_duplicate_task_id=1.0)
    manifest, state = write_manifest(tmp_path), tmp_path / "state"
    assert _run(tmp_path, sim, manifest, state) == 4
    assert counts(state) == {"done": 1, "in_doubt": 2}
    assert sim.accepted() == 3 and sim.max_per_body() == 1
    with open_ledger(state, readonly=True) as ledger:
        task_ids = [job.task_id for job in ledger.iter_jobs("trio") if job.task_id]
    assert len(task_ids) == 1
    assert list(_videos(state).values()) == [hashlib.sha256(sim.sim.video(task_ids[0])).hexdigest()]
    sim.sim.configure(p_duplicate_task_id=0.0)
    assert _run(tmp_path, sim, manifest, state) == 4  # held, never resubmitted by itself
    assert sim.accepted() == 3


def test_a_create_task_failed_that_created_its_task_is_paid_again_and_never_lost(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    """runner reads CREATE_TASK_FAILED as "nothing created" (the design's choice; the docs do not say so): when the
    provider did create the task, the job is sent again and the task is paid twice, one extra per such answer — never
    more, and every job still gets a video of its own body. Pinned so that the exposure stays counted."""
    sim = provider(p_create_failed=0.5, create_failed_created_fraction=1.0, seed=2)
    manifest, state = write_manifest(tmp_path), tmp_path / "state"
    assert _run(tmp_path, sim, manifest, state) == 0
    assert counts(state) == {"done": 3}
    created = sim.sim.stats()["responses"].get("submit:create_failed_created", 0)
    assert created >= 1, "the seed gives no such answer: pick another"
    assert sim.accepted() == 3 + created and sim.max_per_body() >= 2
    with open_ledger(state, readonly=True) as ledger:
        for job in ledger.iter_jobs("trio"):
            assert job.task_id is not None
            assert sim.sim.task(job.task_id).body["prompt"] == job.request["prompt"]


def test_a_per_account_task_cap_below_the_concurrency_is_waited_out(tmp_path: Path, provider: ProviderFactory) -> None:
    """The provider allows one task at a time (its 429 without Retry-After) and runner's concurrency is 4: every job
    is done, each paid once."""
    sim = provider(max_concurrent=1, task_seconds=0.3)
    manifest, state = write_manifest(tmp_path), tmp_path / "state"
    assert _run(tmp_path, sim, manifest, state) == 0
    stats = sim.sim.stats()
    assert counts(state) == {"done": 3}
    assert sim.accepted() == 3 and sim.max_per_body() == 1
    assert stats["responses"].get("submit:concurrency_limited", 0) >= 1 and max(stats["max_active_by_account"].values()) == 1


def test_a_url_that_is_never_signed_anew_leaves_the_video_waiting_not_lost(tmp_path: Path) -> None:
    """The provider hands out one URL per task and it expired (``fresh_urls`` off, [guess: URLs are fresh]): the run
    asks once for a fresh URL, sees the same one and says so, and that a later run fares no better until the provider
    signs a new one (it said only "the next run tries again"; it asked 8 times and downloaded the dead URL 8 times per
    job, every run: with a poll rate limit, hours of a large batch's run), pays nothing again and leaves the jobs
    succeeded, not lost; once the provider signs URLs again the next run stores every video."""
    clock = ManualClock()
    sim = Simulator(SimConfig(task_seconds=0, fresh_urls=False, video_url_ttl=60), clock=clock)
    with SimulatorThread(sim) as server:
        provider = Provider(sim, server)
        manifest, state = write_manifest(tmp_path), tmp_path / "state"
        submitted = run_cli(*run_args("submit", manifest, state, *provider.engine_args()), cwd=tmp_path)
        assert submitted.code == 3 and counts(state) == {"running": 3}, str(submitted)
        for task_id in sim.task_ids():  # someone polled them once (the URLs are signed) and never downloaded
            httpx.get(f"{server.base_url}/v3/async/task-result", params={"task_id": task_id},
                      headers={"Authorization": "Bearer x"}).raise_for_status()
        clock.advance(61)
        stuck = run_cli(*run_args("run", manifest, state, *provider.engine_args()), cwd=tmp_path)
        assert stuck.code != 0 and counts(state) == {"succeeded": 3}, str(stuck)
        assert provider.accepted() == 3 and not _videos(state)
        responses = sim.stats()["responses"]
        assert responses["download:expired"] == 3, responses  # one download of the dead URL per job
        assert responses["task_result:ok"] <= 3 + 3 + 2 * 3, responses  # the test's, the polls, two asks per job
        assert stuck.stderr.count("handed out the same URL again") == 3, str(stuck)
        assert stuck.stderr.count("only once the provider signs a new URL") == 3, str(stuck)  # not just "next run"
        sim.configure(fresh_urls=True)
        done = run_cli(*run_args("run", manifest, state, *provider.engine_args()), cwd=tmp_path)
        assert done.code == 0 and counts(state) == {"done": 3}, str(done)
        assert provider.accepted() == 3 and len(_videos(state)) == 3


ANIMATE = """\
name: animate
model: kling-v3.0-std-i2v
prompt: "the camera slowly pushes in"
defaults: {duration: 3}
matrix:
  image: {glob: "stills/*.png"}
"""


def test_a_provider_that_takes_no_base64_image_fails_the_jobs_unpaid_and_says_why(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    """Whether Kling v3 I2V takes a base64 image is not stated: a provider that refuses the data: URIs runner sends
    for local images fails each job (exit 1) with its words, pays nothing, and `retry --failed` sends them again once
    it takes them."""
    stills = tmp_path / "stills"
    stills.mkdir()
    for n in range(3):
        (stills / f"frame-{n}.png").write_bytes(make_png(480, 320, seed=n))
    sim = provider(data_uri_images=False)
    manifest, state = write_manifest(tmp_path, ANIMATE, "animate.yaml"), tmp_path / "state"
    refused = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert refused.code == 1 and counts(state, "animate") == {"failed": 3}, str(refused)
    assert "base64 data: URI is not accepted" in refused.stderr, str(refused)
    assert sim.accepted() == 0
    sim.sim.configure(data_uri_images=True)
    assert run_cli("retry", str(manifest), "--state", str(state), "--failed", cwd=tmp_path).code == 0
    done = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert done.code == 0 and counts(state, "animate") == {"done": 3}, str(done)
    assert sim.accepted() == 3


def test_a_run_with_another_accounts_key_loses_nothing(tmp_path: Path, provider: ProviderFactory) -> None:
    """The jobs were submitted with one key, the next run has another account's (``tasks_per_key``: the provider
    answers its tasks TASK_NOT_FOUND to the other key [?]): that run ends with the jobs still running, none lost or
    paid again, and a run with the right key collects every video."""
    sim = provider(tasks_per_key=True)
    manifest, state = write_manifest(tmp_path), tmp_path / "state"
    submitted = run_cli(*run_args("submit", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert submitted.code == 3 and counts(state) == {"running": 3}, str(submitted)
    other = run_cli(*run_args("run", manifest, state, *sim.engine_args("--max-runtime", "4")), cwd=tmp_path,
                    key="sk-another-account-0000")  # it would give up polling after 30 errors, ~40 s
    assert other.code == 3 and counts(state) == {"running": 3}, str(other)
    assert "TASK_NOT_FOUND" in other.stderr, str(other)
    assert sim.accepted() == 3 and sim.sim.stats()["responses"]["task_result:not_found"] >= 3
    done = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert done.code == 0 and counts(state) == {"done": 3}, str(done)
    assert sim.accepted() == 3


def test_a_balance_spent_during_the_run_stops_it_and_the_next_run_waits_for_a_top_up(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    """The account holds 1.10 USD, enough for the run's estimate (1.01 USD), but each task costs 0.50 USD (``task_usd``;
    whether Novita bills at submit is unknown): the third submit is refused BILLING_BALANCE_NOT_ENOUGH and the run stops
    (exit 3) with that job pending and the two paid ones kept; the next run reads the balance left and sends nothing
    (exit 2); topped up, a run sends the last job once."""
    sim = provider(balance_usd=1.10, task_usd=0.50)
    manifest, state = write_manifest(tmp_path, THREE_JOBS + "limits:\n  concurrency: 1\n"), tmp_path / "state"
    stopped = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert stopped.code == 3 and "top up" in stopped.stderr, str(stopped)
    assert counts(state).get("pending") == 1 and sim.accepted() == 2, str(stopped)
    waiting = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert waiting.code == 2 and sim.accepted() == 2, str(waiting)
    sim.sim.configure(balance_usd=2.10)
    done = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert done.code == 0 and counts(state) == {"done": 3}, str(done)
    assert sim.accepted() == 3 and sim.max_per_body() == 1
