"""`runner regenerate` and `runner retry` keep the budget the next `runner run` would keep — ``--budget`` >
``RUNNER_BUDGET_USD`` > the manifest's ``limits.budget_usd``, ``none`` lifting it — and refuse one that
cannot be kept (a model of no known price) before anything moves; `retry` takes one kind of job at a time.
Real subprocesses against the simulator on a loopback port."""

from __future__ import annotations

import hashlib
from pathlib import Path

from runner.jobs import JobState
from runner.ledger import open_ledger

from test_cli_support import (
    THREE_JOBS,
    THREE_JOBS_USD,
    ProviderFactory,
    counts,
    provider,
    run_args,
    run_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

ONE = THREE_JOBS_USD / 3
TIGHT = f"{THREE_JOBS_USD + ONE / 2:.4f}"  # the first three jobs fit; one more sample does not


def _keys(state: Path) -> dict[str, str]:
    with open_ledger(state, readonly=True) as ledger:
        return {job.vars["animal"]: job.key for job in ledger.iter_jobs("trio")}


def test_regenerate_keeps_the_environments_budget_and_budget_none_lifts_it(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    manifest = write_manifest(tmp_path, THREE_JOBS + "limits: {budget_usd: 100}\n")
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    cat = _keys(state)["cat"]
    video = state / "outputs" / "trio" / "cat.mp4"
    sha = hashlib.sha256(video.read_bytes()).hexdigest()
    assert run_cli("reject", str(manifest), cat, "--reason", "r", "--state", str(state), cwd=tmp_path).code == 0

    over = run_cli("regenerate", str(manifest), "--state", str(state), cwd=tmp_path, env={"RUNNER_BUDGET_USD": TIGHT})
    assert over.code == 2, str(over)
    assert f"RUNNER_BUDGET_USD={float(TIGHT):g} leaves" in over.stderr and "nothing changed" in over.stderr, str(over)
    assert hashlib.sha256(video.read_bytes()).hexdigest() == sha  # not moved aside
    assert counts(state) == {"done": 3}

    lifted = run_cli("regenerate", str(manifest), "--state", str(state), "--budget", "none", cwd=tmp_path,
                     env={"RUNNER_BUDGET_USD": TIGHT})
    assert lifted.code == 0, str(lifted)
    assert f"next: runner run {manifest} --state {state} --base-url {sim.base_url} --budget none" in lifted.stdout, \
        str(lifted)
    assert counts(state) == {"done": 2, "pending": 1} and not video.exists()


def test_retry_keeps_the_manifests_budget_unless_a_flag_or_the_environment_says_another(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider(p_task_failed=1.0)
    manifest = write_manifest(tmp_path, THREE_JOBS + f"limits: {{budget_usd: {TIGHT}}}\n")
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 1
    assert counts(state) == {"failed": 3}  # three paid: one more passes the manifest's budget

    for extra in ((), ("--dry-run",)):
        over = run_cli("retry", str(manifest), "--failed", "--state", str(state), *extra, cwd=tmp_path)
        assert over.code == 2, str(over)
        assert f"manifest limits.budget_usd: {float(TIGHT):g} leaves" in over.stderr, str(over)
        assert counts(state) == {"failed": 3}

    dry = run_cli("retry", str(manifest), "--failed", "--state", str(state), "--budget", "none", "--dry-run",
                  cwd=tmp_path)
    assert dry.code == 0 and "would put 3 failed job(s) back to pending" in dry.stdout, str(dry)
    one = _keys(state)["dog"]
    moved = run_cli("retry", str(manifest), one, "--state", str(state), cwd=tmp_path,
                    env={"RUNNER_BUDGET_USD": "100"})
    assert moved.code == 0, str(moved)
    assert counts(state) == {"failed": 2, "pending": 1}


def test_retry_and_regenerate_refuse_a_budget_they_cannot_keep_for_a_model_of_no_known_price(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider(p_task_failed=1.0)
    manifest = write_manifest(tmp_path, THREE_JOBS.replace("name: trio\n", "name: trio\nmodel: kling-v3.0-4k-t2v\n"))
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 1

    retried = run_cli("retry", str(manifest), "--failed", "--budget", "1", "--state", str(state), cwd=tmp_path)
    assert retried.code == 2, str(retried)
    assert "--budget 1) cannot be kept: no price is known for kling-v3.0-4k-t2v" in retried.stderr, str(retried)
    assert counts(state) == {"failed": 3}

    sim.sim.configure(p_task_failed=0.0)
    assert run_cli("retry", str(manifest), "--failed", "--state", str(state), cwd=tmp_path).code == 0
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    cat = _keys(state)["cat"]
    assert run_cli("reject", str(manifest), cat, "--reason", "r", "--state", str(state), cwd=tmp_path).code == 0
    regen = run_cli("regenerate", str(manifest), "--budget", "1", "--state", str(state), cwd=tmp_path)
    assert regen.code == 2, str(regen)
    assert "cannot be kept: no price is known for kling-v3.0-4k-t2v" in regen.stderr and "next:" not in regen.stdout
    with open_ledger(state, readonly=True) as ledger:
        job = ledger.get(cat, "trio")
        assert job is not None and job.state is JobState.DONE and job.review == "rejected"


def test_retry_refuses_two_kinds_at_once_in_either_order(tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider(p_task_failed=1.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 1
    for flags in (("--in-doubt", "--failed"), ("--failed", "--in-doubt"), ("--failed", "--lost")):
        both = run_cli("retry", str(manifest), *flags, "--state", str(state), cwd=tmp_path)
        assert both.code == 2, str(both)
        assert all(flag in both.stderr for flag in flags) and "one kind at a time" in both.stderr, str(both)
        assert counts(state) == {"failed": 3}


def test_regenerate_after_raising_the_manifests_budget_plans_the_edit_and_queues(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """A budget raise in the manifest is the very reason to edit it before regenerating: it was refused as
    'MANIFEST changed since a run last planned it' until a run (which also sends) planned it. Regenerate plans the
    edit itself (nothing is sent) and goes on; the run it prints pays for the one sample."""
    sim = provider()
    manifest = write_manifest(tmp_path, THREE_JOBS + f"limits: {{budget_usd: {TIGHT}}}\n")
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    cat = _keys(state)["cat"]
    assert run_cli("reject", str(manifest), cat, "--reason", "r", "--state", str(state), cwd=tmp_path).code == 0
    over = run_cli("regenerate", str(manifest), "--state", str(state), cwd=tmp_path)
    assert over.code == 2 and "limits.budget_usd" in over.stderr, str(over)

    manifest.write_text(THREE_JOBS + "limits: {budget_usd: 100}\n", encoding="utf-8")
    dry = run_cli("regenerate", str(manifest), "--state", str(state), "--dry-run", cwd=tmp_path)
    assert dry.code == 0 and "1 rejected clip(s) will be generated again" in dry.stdout, str(dry)
    assert counts(state) == {"done": 3}
    raised = run_cli("regenerate", str(manifest), "--state", str(state), cwd=tmp_path)
    assert raised.code == 0, str(raised)
    assert "1 job(s) back to pending" in raised.stdout and "nothing sent" in raised.stdout, str(raised)
    assert counts(state) == {"done": 2, "pending": 1}
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    assert counts(state) == {"done": 3} and sim.accepted() == 4


def test_retry_after_an_edit_plans_it_first_and_quotes_only_the_jobs_a_run_sends(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """An edit dropping a failed job, then `retry --failed`: it quoted '3 new paid task(s)' from the plan the ledger
    held, and put the dropped job back to pending, where no run sends it. Planned first, the quote is the 2 a run
    sends."""
    sim = provider(p_task_failed=1.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 1
    manifest.write_text(THREE_JOBS.replace("[cat, dog, owl]", "[cat, dog]"), encoding="utf-8")
    retried = run_cli("retry", str(manifest), "--failed", "--state", str(state), cwd=tmp_path)
    assert retried.code == 0, str(retried)
    assert "2 failed job(s) back to pending" in retried.stdout, str(retried)
    assert counts(state) == {"pending": 2}


def test_retry_refused_after_planning_an_edit_says_the_edit_was_planned(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """retry plans an edit before it quotes (e77e740); a retry refused after that — over the budget the edit set —
    still said '(nothing changed)', while the ledger now held the edit (a job dropped, stored videos renamed or set
    aside, as a run does): the operator was told the opposite of what happened."""
    sim = provider(p_task_failed=1.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 1
    manifest.write_text(THREE_JOBS.replace("[cat, dog, owl]", "[cat, dog]") + f"limits: {{budget_usd: {ONE:.4f}}}\n",
                        encoding="utf-8")
    refused = run_cli("retry", str(manifest), "--failed", "--state", str(state), cwd=tmp_path)
    assert refused.code == 2 and "limits.budget_usd" in refused.stderr, str(refused)
    assert "nothing changed" not in refused.stderr and "planned first" in refused.stderr, str(refused)
    assert counts(state) == {"failed": 2}, "the edit is what the ledger holds: owl dropped"


def test_a_run_stopped_by_the_budget_says_where_it_came_from_and_the_budget_that_finishes_the_batch(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """A builder's first budgeted run stops part-way (exit 3): it said "budget reached: … budget 0.50 USD" and no
    more — not that the budget was the manifest's `limits.budget_usd`, what the rest costs, nor how to go on (brief Q).
    It now names the source, the jobs left and their estimate, and the command with a budget that finishes them;
    that command runs the rest, paying for each job once."""
    sim = provider(task_seconds=0)
    budget = f"{ONE * 1.5:.2f}"  # one job fits, the second does not
    manifest = write_manifest(tmp_path, THREE_JOBS + f"limits: {{budget_usd: {budget}}}\n")
    state = tmp_path / "state"
    stopped = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert stopped.code == 3, str(stopped)
    assert counts(state) == {"done": 1, "pending": 2}, str(stopped)
    assert f"manifest limits.budget_usd: {float(budget):g}" in stopped.stderr, str(stopped)
    assert f"2 job(s) left, about {2 * ONE:.2f} USD (estimate)" in stopped.stderr, str(stopped)
    whole = f"{3 * ONE + 0.005:.2f}"  # the whole batch, in cents, rounded up
    hint = f"runner run {manifest} --state {state} --base-url {sim.base_url} --budget {whole}"
    assert hint in stopped.stderr, str(stopped)
    finished = run_cli(*hint.split()[1:], "--rpm", "none", "--poll-interval", "0.05", cwd=tmp_path)
    assert finished.code == 0 and counts(state) == {"done": 3}, str(finished)
    assert sim.accepted() == 3
