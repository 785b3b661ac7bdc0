"""`runner retry` narrowed by key or prefix and by failure reason, with --dry-run and --budget: the service
(runner.service.retrying) on a SQLite ledger and on a PostgreSQL one (--ledger URL)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import service
from runner.errors import UsageError
from runner.jobs import JobSpec, JobState
from runner.ledger import LedgerBackend, open_ledger
from runner.ledger.postgres import open_postgres_ledger
from runner.manifest import load_manifest
from runner.service.retrying import retry
from runner.service.state import open_ledger_at

PRICE = 0.5
MANIFEST = 'name: trio\nprompt: "a {animal}"\nmatrix:\n  animal: [cat]\noutput: "{animal}.mp4"\n'
REASONS = {0: "TASK_FAILED: content policy violation", 1: "TASK_FAILED: upstream timeout",
           2: "TASK_FAILED: Content Policy (flagged frame)"}


def _spec(i: int) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5}, vars={"i": i},
                         repeat=1, output=f"c{i}.mp4", estimated_usd=PRICE)


KEYS = [_spec(i).key for i in range(6)]


def _fill(ledger: LedgerBackend, manifest: Path) -> None:
    """Jobs 0-2 failed (REASONS), 3 in doubt, 4 done, 5 pending: 5 submits paid so far (2.50 USD). Registered as the
    plan of ``manifest``'s file as it is (its digest): retry plans a manifest edited since, as a run would."""
    ledger.register("trio", load_manifest(manifest).digest, [_spec(i) for i in range(6)])
    for i in range(5):
        attempt = ledger.mark_submitting(KEYS[i])
        assert attempt is not None
        if i == 3:
            assert ledger.mark_in_doubt(KEYS[i], attempt, http_status=None, reason=None, message="read timeout")
            continue
        assert ledger.mark_running(KEYS[i], attempt, task_id=f"t{i}", http_status=200)
        if i in REASONS:
            assert ledger.mark_failed(KEYS[i], reason=REASONS[i])
        else:
            assert ledger.mark_succeeded(KEYS[i], video_url="https://v/x", url_expires_at=None, debug={})
            assert ledger.mark_done(KEYS[i], path="outputs/trio/c4.mp4", sha256="a" * 64, bytes=3)


@pytest.fixture(params=["sqlite", "postgres"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, service.RunOptions]]:
    manifest = tmp_path / "trio.yaml"
    manifest.write_text(MANIFEST, encoding="utf-8")
    state = tmp_path / "state"
    if request.param == "sqlite":
        with open_ledger(state) as ledger:
            _fill(ledger, manifest)
        yield manifest, service.RunOptions(state_dir=state)
    else:
        url = request.getfixturevalue("pg_url")
        with open_postgres_ledger(url, state) as ledger:
            _fill(ledger, manifest)
        yield manifest, service.RunOptions(state_dir=state, ledger_url=url)


def _states(options: service.RunOptions) -> list[JobState]:
    with open_ledger_at(options.state_dir or Path(), url=options.ledger_url, readonly=True) as ledger:
        found = ledger.states_of(KEYS)
    return [found[key] for key in KEYS]


BEFORE = [JobState.FAILED] * 3 + [JobState.IN_DOUBT, JobState.DONE, JobState.PENDING]


def test_retry_by_key_and_prefix_moves_only_those(setup: tuple[Path, service.RunOptions]) -> None:
    manifest, options = setup
    done = retry(manifest, "failed", options, names=[KEYS[2], KEYS[0][:12]])
    assert done.moved == 2 and done.cost_usd == pytest.approx(2 * PRICE)
    assert [job.key for job in done.chosen] == [KEYS[2], KEYS[0]]
    assert _states(options) == [JobState.PENDING, JobState.FAILED, JobState.PENDING, *BEFORE[3:]]


def test_a_key_not_in_that_state_or_an_ambiguous_prefix_changes_nothing(
        setup: tuple[Path, service.RunOptions]) -> None:
    manifest, options = setup
    with pytest.raises(UsageError, match=r"is done"):
        retry(manifest, "failed", options, names=[KEYS[0], KEYS[4]])
    with pytest.raises(UsageError, match=r"is in_doubt.*pass --in-doubt"):
        retry(manifest, "failed", options, names=[KEYS[3]])
    with pytest.raises(UsageError, match=r"matches \d+ jobs"):
        retry(manifest, "failed", options, names=[_shared_prefix()])
    assert _states(options) == BEFORE
    done = retry(manifest, "in_doubt", options, names=[KEYS[3][:10]])
    assert done.moved == 1 and _states(options)[3] is JobState.PENDING


def _shared_prefix() -> str:
    """The shortest prefix that two of the six keys share (hex keys: one character usually does)."""
    for length in range(1, 64):
        seen: dict[str, int] = {}
        for key in KEYS:
            seen[key[:length]] = seen.get(key[:length], 0) + 1
        shared = [prefix for prefix, n in seen.items() if n > 1]
        if shared:
            return shared[0]
    raise AssertionError("no two keys share a prefix")


def test_retry_by_reason_is_a_case_insensitive_substring(setup: tuple[Path, service.RunOptions]) -> None:
    manifest, options = setup
    with pytest.raises(UsageError) as caught:
        retry(manifest, "failed", options, reason="quota")
    message = str(caught.value)
    assert "'TASK_FAILED: upstream timeout' ×1" in message and "content policy violation" in message, message
    assert _states(options) == BEFORE
    done = retry(manifest, "failed", options, reason="CONTENT policy")
    assert sorted(job.key for job in done.chosen) == sorted([KEYS[0], KEYS[2]]) and done.moved == 2
    assert _states(options) == [JobState.PENDING, JobState.FAILED, JobState.PENDING, *BEFORE[3:]]


def test_dry_run_says_what_and_what_it_costs_and_changes_nothing(
        setup: tuple[Path, service.RunOptions]) -> None:
    manifest, options = setup
    state = options.state_dir
    assert state is not None
    with open_ledger_at(state, url=options.ledger_url, readonly=True) as ledger:
        attempts = [ledger.attempts(key) for key in KEYS]
    files = sorted(state.glob("ledger.db*"))
    digests = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    done = retry(manifest, "failed", options, dry_run=True)
    assert (len(done.chosen), done.moved, done.cost_usd, done.spent_usd) == (3, 0, 3 * PRICE, 5 * PRICE)
    done = retry(manifest, "failed", options, dry_run=True, reason="timeout")
    assert [job.key for job in done.chosen] == [KEYS[1]]
    assert sorted(state.glob("ledger.db*")) == files
    assert [hashlib.sha256(f.read_bytes()).hexdigest() for f in files] == digests  # byte for byte (SQLite)
    with open_ledger_at(state, url=options.ledger_url, readonly=True) as ledger:
        assert [ledger.attempts(key) for key in KEYS] == attempts
    assert _states(options) == BEFORE


def test_budget_counts_what_was_spent_and_refuses_before_changing_anything(
        setup: tuple[Path, service.RunOptions]) -> None:
    """2.50 USD spent and job 5 pending (0.50, what the next run pays first): the budget counts both. (It counted
    the spend alone: a retry of 0.50 under --budget 3 was queued, and the next run stopped at the budget halfway.)"""
    manifest, options = setup
    with pytest.raises(UsageError, match=r"may cost up to \$1\.50, but --budget 3\.5 leaves \$0\.50 \(spent so far"
                                         r" \$2\.50, \$0\.50 already queued for the next run\)"):
        retry(manifest, "failed", options, budget=3.5)
    assert _states(options) == BEFORE
    with pytest.raises(UsageError, match=r"leaves \$0\.00"):
        retry(manifest, "failed", options, budget=3.0, names=[KEYS[1]])  # 2.50 spent + 0.50 queued + 0.50
    assert _states(options) == BEFORE
    done = retry(manifest, "failed", options, budget=3.5, names=[KEYS[1]])
    assert done.moved == 1
