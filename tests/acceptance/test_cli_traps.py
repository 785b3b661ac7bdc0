"""Issue 12's CLI traps: what a new user typed, and what runner should have answered."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from test_cli_support import (
    THREE_JOBS,
    ProviderFactory,
    counts,
    provider,
    run_args,
    run_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

SIM = ("--simulate", "--sim-task-seconds", "0", "--rpm", "none", "--poll-rpm", "none", "--poll-interval", "0.05")


def test_quiet_after_the_subcommand_is_accepted(tmp_path: Path) -> None:
    """`runner run m.yaml -q` (and --quiet) works as `runner -q run m.yaml`: no "No such option", no --budget hint."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    for flag in ("-q", "--quiet"):
        result = run_cli(*run_args("run", manifest, state, *SIM), flag, cwd=tmp_path, key=None)
        assert result.code == 0, str(result)
        assert "No such option" not in result.stderr and "--budget" not in result.stderr, str(result)
        assert "planning" not in result.stderr and "simulator listening" not in result.stderr, str(result)
    assert counts(state) == {"done": 3}


def test_verbose_and_log_json_after_the_subcommand_are_accepted(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    result = run_cli(*run_args("run", manifest, state, *SIM), "--log-json", cwd=tmp_path, key=None)
    assert result.code == 0, str(result)
    assert result.stderr.strip() and all(json.loads(line) for line in result.stderr.splitlines()
                                         if line.strip()), str(result)  # every line, --simulate's included
    plan = run_cli("plan", str(manifest), "--state", str(state), "-v", cwd=tmp_path)
    assert plan.code == 0, str(plan)


def test_a_global_flag_after_double_dash_is_not_moved(tmp_path: Path) -> None:
    """After `--` every word is an argument: `-q` there is not the global flag."""
    result = run_cli("plan", "--", "-q", cwd=tmp_path)
    assert result.code == 2, str(result)
    assert "-q" in result.stderr


def test_ls_takes_the_state_directory_as_state_like_every_command(tmp_path: Path) -> None:
    """`runner ls m.yaml --state DIR` reads DIR's ledger; job states are --only; --state-dir still works."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "elsewhere"
    done = run_cli(*run_args("run", manifest, state, *SIM), cwd=tmp_path, key=None)
    assert done.code == 0, str(done)
    listed = run_cli("ls", str(manifest), "--state", str(state), cwd=tmp_path)
    assert listed.code == 0, str(listed)
    assert len(listed.stdout.splitlines()) == 1 + 3, str(listed)
    only = run_cli("ls", str(manifest), "--state", str(state), "--only", "failed", cwd=tmp_path)
    assert only.code == 0 and len(only.stdout.splitlines()) == 0, str(only)
    old = run_cli("ls", str(manifest), "--state-dir", str(state), "--state", "done", cwd=tmp_path)
    assert old.code == 0 and len(old.stdout.splitlines()) == 1 + 3, str(old)
    help_text = run_cli("ls", "--help", cwd=tmp_path).stdout
    assert "--only" in help_text and "--state-dir" not in help_text


def test_status_and_ls_without_a_ledger_say_so_and_exit_2(tmp_path: Path) -> None:
    """Not "0 jobs", exit 0: one line naming the directory, exit 2."""
    manifest = write_manifest(tmp_path)
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    for command in ("status", "ls"):
        result = run_cli(command, str(manifest), "--state", str(empty), cwd=tmp_path)
        assert result.code == 2, str(result)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and str(empty) in lines[0] and "no ledger" in lines[0], str(result)
        assert not (empty / "ledger.db").exists()


def test_collect_that_leaves_pending_jobs_says_why_it_exits_3(tmp_path: Path, provider: ProviderFactory) -> None:
    """collect prints its summary, then why the exit code is 3: jobs never submitted are still pending."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    submitted = run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "2")), cwd=tmp_path)
    assert submitted.code == 3, str(submitted)
    collected = run_cli(*run_args("collect", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert collected.code == 3, str(collected)
    last = collected.stderr.strip().splitlines()[-1]
    assert "1 job(s) still pending" in last and "exit 3" in last and "runner run" in last, str(collected)


def test_simulate_on_a_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("simulate", "--port", str(port), cwd=tmp_path, timeout=30)
    assert result.code == 2, str(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(port) in lines[0] and "--port" in lines[0], str(result)


def test_a_refusal_says_nothing_was_changed_once(tmp_path: Path) -> None:
    """A ledger that is gone (its traces remain): the refusal ends with one 'nothing changed', not two."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    done = run_cli(*run_args("run", manifest, state, *SIM), cwd=tmp_path, key=None)
    assert done.code == 0, str(done)
    (state / "ledger.db").unlink()
    again = run_cli(*run_args("run", manifest, state, *SIM), cwd=tmp_path, key=None)
    assert again.code == 2, str(again)
    said = again.stderr.lower()
    assert said.count("nothing was changed") + said.count("nothing was sent") == 1, str(again)



def test_flags_that_contradict_each_other_or_go_with_no_other_are_refused(tmp_path: Path) -> None:
    """The review sweep: `run --simulate --base-url URL` ran against the simulator and ignored the URL, exit 0;
    `--sim-task-seconds` without `--simulate` was accepted and did nothing. Both are usage errors now, and so is
    `--state` before the subcommand no more ("No such option" there, while -q worked)."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    both = run_cli(*run_args("run", manifest, state, "--simulate", "--base-url", "http://127.0.0.1:9"), cwd=tmp_path)
    assert both.code == 2 and "give one of them" in both.stderr, str(both)
    alone = run_cli(*run_args("run", manifest, state, "--sim-task-seconds", "1"), cwd=tmp_path)
    assert alone.code == 2 and "it goes with --simulate" in alone.stderr, str(alone)
    assert not (state / "ledger.db").exists()  # nothing was opened, nothing sent
    first = run_cli("--state", str(state), "run", str(manifest), *SIM, cwd=tmp_path, key=None)
    assert first.code == 0 and counts(state) == {"done": 3}, str(first)


def test_report_group_by_of_a_manifest_not_run_here_says_so(tmp_path: Path) -> None:
    """`runner report manifests/cities.yaml --to review/ --group-by style` (its --help's example) before cities ran in
    that ledger said "--group-by style: not a variable of city-timelapses (variables: none)", of a file that has it."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    other = write_manifest(tmp_path, THREE_JOBS.replace("name: trio", "name: other"), name="other.yaml")
    assert run_cli(*run_args("run", other, state, *SIM), cwd=tmp_path, key=None).code == 0
    early = run_cli("report", str(manifest), "--state", str(state), "--to", "review", "--group-by", "animal",
                    cwd=tmp_path)
    assert early.code == 2 and "holds no job of trio" in early.stderr, str(early)
    assert run_cli(*run_args("run", manifest, state, *SIM), cwd=tmp_path, key=None).code == 0
    grouped = run_cli("report", str(manifest), "--state", str(state), "--to", "review", "--group-by", "animal",
                      cwd=tmp_path)
    assert grouped.code == 0, str(grouped)
    wrong = run_cli("report", str(manifest), "--state", str(state), "--to", "review", "--group-by", "colour",
                    cwd=tmp_path)
    assert wrong.code == 2 and "not a variable of trio (variables: animal)" in wrong.stderr, str(wrong)


def test_retry_by_reason_with_no_failed_job_at_all_is_no_error(tmp_path: Path) -> None:
    """`runner retry m.yaml --reason timeout --dry-run` (its --help's example) on a batch with no failed job said
    "--reason 'timeout' matches none of the 0 failed job(s)", exit 2, where `--failed` says "no failed jobs", exit 0.
    A reason matching none of the failed jobs there are is still refused, listing theirs."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *SIM), cwd=tmp_path, key=None).code == 0
    for extra in (("--dry-run",), ()):
        none = run_cli("retry", str(manifest), "--state", str(state), "--reason", "timeout", *extra, cwd=tmp_path)
        assert none.code == 0 and "no failed jobs in trio" in none.stdout, str(none)


def test_a_missing_key_suggests_the_simulator_once_and_only_where_it_helps(tmp_path: Path,
                                                                          provider: ProviderFactory) -> None:
    """`runner run m.yaml` without NOVITA_API_KEY said "(or try runner against the built-in simulator, which needs no
    key); or add --simulate to run against the built-in simulator"; and `verify`, which cannot use one (a ledger's
    tasks are at its own provider), said it too."""
    manifest = write_manifest(tmp_path)
    keyless = run_cli("run", str(manifest), "--state", str(tmp_path / "fresh"), cwd=tmp_path, key=None)
    assert keyless.code == 2 and keyless.stderr.count("simulator") == 1 and "--simulate" in keyless.stderr, \
        str(keyless)
    sim = provider()
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    (state / "outputs" / "trio" / "cat.mp4").unlink()
    verify = run_cli("verify", str(manifest), "--state", str(state), cwd=tmp_path, key=None)
    assert verify.code == 2 and "NOVITA_API_KEY is not set" in verify.stderr, str(verify)
    assert "simulator" not in verify.stderr, str(verify)
