"""The `next: runner …` line a review step prints is a command that works as printed: same ledger, same provider.

The newcomer's walk through the README (2026-12-05): after `runner regenerate MANIFEST --state state/demo`, the line
said `next: runner run MANIFEST`; run as printed, it planned the batch into the manifest's own `state/` — a new ledger
that knew none of the jobs — and sent all of them to the real API (paid again, with a key set).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from test_cli_adopt import _in_doubt_with_their_tasks

from runner.ledger import open_ledger
from runner.service.hints import next_command

from test_cli_support import FAST, ProviderFactory, counts, provider, run_args, run_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest

QUICK = ("--sim-task-seconds", "0", *FAST)


def _next(stdout: str) -> list[str]:
    """The words of the `next:` line, without its note."""
    line = next(line for line in stdout.splitlines() if line.startswith("next: "))
    return shlex.split(line.removeprefix("next: ").split("   (")[0])


def test_reject_regenerate_and_run_as_printed_stay_on_the_ledger_and_the_simulator(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state demo"  # not the manifest's own state/, and a space to quote
    assert run_cli(*run_args("run", manifest, state, "--simulate", *QUICK), cwd=tmp_path).code == 0
    with open_ledger(state, readonly=True) as ledger:
        key = next(iter(ledger.iter_jobs("trio"))).key
    rejected = run_cli("reject", str(manifest), key, "--reason", "melting", "--state", str(state), cwd=tmp_path)
    assert rejected.code == 0, str(rejected)
    regenerate = _next(rejected.stdout)
    assert regenerate == ["runner", "regenerate", str(manifest), "--state", str(state)], rejected.stdout
    regenerated = run_cli(*regenerate[1:], cwd=tmp_path)
    assert regenerated.code == 0, str(regenerated)
    run = _next(regenerated.stdout)
    assert run == ["runner", "run", str(manifest), "--state", str(state), "--simulate"], regenerated.stdout
    again = run_cli(*run[1:], *QUICK, cwd=tmp_path)
    assert again.code == 0, str(again)
    assert counts(state) == {"done": 3} and not (tmp_path / "state").exists()  # no second ledger anywhere


def test_adopt_without_base_url_asks_the_provider_the_ledger_records(tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    doubted, tasks = _in_doubt_with_their_tasks(tmp_path, sim, write_manifest(tmp_path))
    key, task_id = next(iter(tasks.items()))
    adopted = run_cli("adopt", key, task_id, "--state", str(doubted), cwd=tmp_path)  # no --base-url: the ledger's own
    assert adopted.code == 0, str(adopted)
    collect = _next(adopted.stdout)
    assert collect == ["runner", "collect", "--state", str(doubted), "--base-url", sim.base_url], adopted.stdout


def test_the_hint_names_what_the_next_command_needs() -> None:
    assert next_command("run", "m.yaml") == "next: runner run m.yaml"
    assert next_command("run", "my dir/m.yaml", state_dir=Path("st 1"), provider="simulator", budget_usd="20") \
        == "next: runner run 'my dir/m.yaml' --state 'st 1' --simulate --budget 20"
    assert next_command("collect", state_dir=Path("s"), provider="https://api.novita.ai", note="or run") \
        == "next: runner collect --state s   (or run)"
    assert next_command("collect", state_dir=Path("s"), provider="http://127.0.0.1:8765") \
        == "next: runner collect --state s --base-url http://127.0.0.1:8765"


def test_the_commands_status_suggests_work_as_printed(tmp_path: Path) -> None:
    """`runner status MANIFEST --state DIR` of a batch with a rejected clip said "`runner regenerate MANIFEST` queues a
    fresh sample of each": run as printed, it looked in the manifest's own state/ (exit 2, no ledger there) — or
    in another batch's ledger there (the README walk, 2026-12-05). Each command it suggests repeats --state."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state demo"
    assert run_cli(*run_args("run", manifest, state, "--simulate", *QUICK), cwd=tmp_path).code == 0
    with open_ledger(state, readonly=True) as ledger:
        key = next(iter(ledger.iter_jobs("trio"))).key
    assert run_cli("reject", str(manifest), key, "--reason", "melting", "--state", str(state), cwd=tmp_path).code == 0
    status = run_cli("status", str(manifest), "--state", str(state), cwd=tmp_path)
    assert status.code == 0, str(status)
    [suggested] = [part for line in status.stdout.splitlines() for part in line.split("`")[1::2]
                   if part.startswith("runner regenerate")]
    words = shlex.split(suggested)
    assert words == ["runner", "regenerate", str(manifest), "--state", str(state)], status.stdout
    regenerate = run_cli(*words[1:], "--dry-run", cwd=tmp_path)
    assert regenerate.code == 0 and "1 rejected clip(s)" in regenerate.stdout, str(regenerate)


def test_the_run_history_status_points_to_is_the_batchs(tmp_path: Path) -> None:
    """`runner status MANIFEST --state DIR` said "estimated spend by run #1 … (`runner runs` lists them)": as printed,
    `runner runs` read ./state — no ledger there (exit 2), or another batch's history, its runs and spend taken for
    this one's (the newcomer's walk, 2026-12-06). It names the manifest and the --state the status was given."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state demo"
    assert run_cli(*run_args("run", manifest, state, "--simulate", *QUICK), cwd=tmp_path).code == 0
    status = run_cli("status", str(manifest), "--state", str(state), cwd=tmp_path)
    assert status.code == 0, str(status)
    [suggested] = [part for line in status.stdout.splitlines() for part in line.split("`")[1::2]
                   if part.startswith("runner runs")]
    words = shlex.split(suggested)
    assert words == ["runner", "runs", str(manifest), "--state", str(state)], status.stdout
    runs = run_cli(*words[1:], cwd=tmp_path)
    assert runs.code == 0 and "1 run(s)" in runs.stdout, str(runs)


def test_the_run_a_collect_suggests_for_the_jobs_left_pending_stays_on_the_ledger(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """`runner collect MANIFEST --state DIR` that leaves jobs pending said "`runner run MANIFEST` or `runner submit`
    sends them": run as printed, that planned the batch into the manifest's own state/ — a new ledger, no guard there
    since the jobs are recorded elsewhere — and paid for every job again at the default provider (the README walk,
    2026-12-05). It names the same --state and provider."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "batch state"
    where = ("--base-url", sim.base_url, *FAST)
    assert run_cli(*run_args("submit", manifest, state, "--concurrency", "1", *where), cwd=tmp_path).code == 3
    collected = run_cli(*run_args("collect", manifest, state, *where), cwd=tmp_path)
    assert collected.code == 3, str(collected)
    [line] = [line for line in collected.stderr.splitlines() if "still pending" in line]
    words = shlex.split(line.split("`")[1])
    assert words == ["runner", "run", str(manifest), "--state", str(state), "--base-url", sim.base_url], line
    again = run_cli(*words[1:], *FAST, cwd=tmp_path)
    assert again.code == 0, str(again)
    assert counts(state) == {"done": 3} and not (tmp_path / "state").exists()  # no second ledger anywhere
    assert sim.sim.stats()["accepted_total"] == 3, sim.sim.stats()  # each job paid once


def test_the_retry_a_run_suggests_for_jobs_in_doubt_finds_their_ledger(tmp_path: Path, provider: ProviderFactory) -> None:
    """A run on a ledger holding jobs in doubt said "Decide with `runner retry MANIFEST --in-doubt`": without the
    run's --state, as printed it found no ledger (exit 2), or the manifest's own state/ of another batch."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "batch state"
    sim.sim.configure(p_drop=1.0)
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 4
    sim.sim.configure(p_drop=0.0)
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 4, str(again)
    [line] = [line for line in again.stderr.splitlines() if "Decide with" in line]
    words = shlex.split(line.split("`")[1])
    assert words == ["runner", "retry", str(manifest), "--state", str(state), "--in-doubt"], line
    retried = run_cli(*words[1:], "--dry-run", cwd=tmp_path)
    assert retried.code == 0 and "3" in retried.stdout, str(retried)


def test_the_retries_a_refused_retry_suggests_find_their_ledger(tmp_path: Path, provider: ProviderFactory) -> None:
    """`retry m.yaml --failed --in-doubt --state DIR` is refused saying to run `runner retry m.yaml --failed`, then
    `… --in-doubt`: without --state, as printed they found no ledger (exit 2) or another batch's in state/."""
    sim = provider(p_task_failed=1.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "batch state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 1
    both = run_cli("retry", str(manifest), "--failed", "--in-doubt", "--state", str(state), cwd=tmp_path)
    assert both.code == 2, str(both)
    suggested = [shlex.split(part) for part in both.stderr.split("`")[1::2]]
    assert suggested == [["runner", "retry", str(manifest), "--state", str(state), flag]
                         for flag in ("--failed", "--in-doubt")], both.stderr
    retried = run_cli(*suggested[0][1:], "--dry-run", cwd=tmp_path)
    assert retried.code == 0 and "3" in retried.stdout, str(retried)
