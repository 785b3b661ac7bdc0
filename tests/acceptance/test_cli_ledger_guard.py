"""One manifest, one ledger: found from any directory, never silently made again, locked as the real
file, tied to its provider, refused when damaged — each checked through the CLI as an operator runs it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from runner.ledger import DB_NAME, open_ledger

from test_cli_support import (
    FAST,
    SIX_JOBS,
    ProviderFactory,
    a_batch_partly_paid,
    assert_runs_refuse_a_copy_cut_short,
    clean_env,
    cli_argv,
    counts,
    provider,
    run_args,
    run_cli,
    setpriv_argv,
    start_cli,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

SIM = ("--simulate", "--sim-task-seconds", "0", *FAST)


def _ledgers(root: Path) -> list[Path]:
    return sorted(root.rglob(DB_NAME))


def _submits(db: Path) -> int:
    raw = sqlite3.connect(db)
    try:
        return int(raw.execute("SELECT count(*) FROM attempts WHERE kind = 'submit'").fetchone()[0])
    finally:
        raw.close()


# ---------------------------------------------------------------- item 2: the default state directory


def test_the_same_manifest_finds_one_ledger_from_any_directory(tmp_path: Path) -> None:
    """From the repository, from a subfolder and from elsewhere: one ledger, each job submitted once."""
    repo = tmp_path / "repo"
    (repo / "state").mkdir(parents=True)  # as in the repository: state/.gitkeep
    (repo / "sub").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (repo / "manifests").mkdir()
    manifest = write_manifest(repo / "manifests")
    ledger = repo / "state" / DB_NAME

    first = run_cli("run", "manifests/trio.yaml", *SIM, cwd=repo, key=None)
    assert first.code == 0, str(first)
    assert f"runner: created a new ledger at {ledger}" in first.stderr
    again = run_cli("run", "../manifests/trio.yaml", *SIM, cwd=repo / "sub", key=None)
    assert again.code == 0, str(again)
    third = run_cli("run", str(manifest.resolve()), *SIM, cwd=elsewhere, key=None)
    assert third.code == 0, str(third)
    assert "created a new ledger" not in again.stderr + third.stderr
    assert _ledgers(tmp_path) == [ledger]
    assert _submits(ledger) == 3
    status = run_cli("status", "../manifests/trio.yaml", "--json", cwd=repo / "sub")
    assert status.code == 0 and '"done": 3' in status.stdout, str(status)
    plan = run_cli("plan", str(manifest.resolve()), "--json", cwd=elsewhere)
    assert plan.code == 0 and json.loads(plan.stdout)["ledger"] == str(ledger), str(plan)


def test_without_a_state_folder_the_ledger_goes_beside_the_manifest(tmp_path: Path) -> None:
    """No state/ in the manifest's folder or above: state/ beside the manifest, wherever it is run from."""
    folder = tmp_path / "batches" / "june"
    folder.mkdir(parents=True)
    write_manifest(folder)
    result = run_cli("run", "batches/june/trio.yaml", *SIM, cwd=tmp_path, key=None)
    assert result.code == 0, str(result)
    assert _ledgers(tmp_path) == [folder / "state" / DB_NAME]
    assert f"created a new ledger at {folder / 'state' / DB_NAME}" in result.stderr


def test_read_only_commands_create_nothing(tmp_path: Path) -> None:
    """plan, status, ls and export on a manifest never run: no state directory appears anywhere.
    (status, ls and export say there is no ledger there, exit 2: issue 12; an export read it as no jobs, exit 0,
    until brief Q.)"""
    manifest = write_manifest(tmp_path)
    for args in (["plan"], ["status"], ["ls"], ["export"]):
        result = run_cli(args[0], str(manifest), cwd=tmp_path, key=None)
        assert result.code == (0 if args[0] == "plan" else 2), str(result)
    assert not any(path.name == "state" for path in tmp_path.rglob("*"))


def test_the_former_default_ledger_is_not_silently_left_behind(tmp_path: Path) -> None:
    """A manifest's jobs in ./state (where runner looked before): a run without --state refuses a new ledger."""
    work = tmp_path / "work"
    work.mkdir()
    folder = tmp_path / "manifests"
    folder.mkdir()
    write_manifest(folder)
    made = run_cli("run", "../manifests/trio.yaml", "--state", "state", *SIM, cwd=work, key=None)
    assert made.code == 0, str(made)
    refused = run_cli("run", "../manifests/trio.yaml", *SIM, cwd=work, key=None)
    assert refused.code == 2, str(refused)
    assert "--state state" in refused.stderr and "--new-ledger" in refused.stderr
    assert "simulator listening" not in refused.stderr
    assert _ledgers(tmp_path) == [work / "state" / DB_NAME]


def test_an_empty_state_folder_nearer_the_manifest_does_not_hide_its_ledger(tmp_path: Path) -> None:
    """A state/ folder made beside the manifest (by hand, by a script) after its jobs were recorded in the
    repository's state/: a run without --state would start a new ledger there and pay for the batch again.
    It is refused, naming both, and nothing is sent (operator probe, 2026-12-04)."""
    repo = tmp_path / "repo"
    (repo / "state").mkdir(parents=True)
    (repo / "manifests").mkdir()
    write_manifest(repo / "manifests")
    ledger = repo / "state" / DB_NAME
    first = run_cli("run", "manifests/trio.yaml", *SIM, cwd=repo, key=None)
    assert first.code == 0, str(first)
    (repo / "manifests" / "state").mkdir()  # empty

    elsewhere = tmp_path / "elsewhere"  # (not the repository: its ./state is checked already, the former default)
    elsewhere.mkdir()
    refused = run_cli("run", str(repo / "manifests" / "trio.yaml"), *SIM, cwd=elsewhere, key=None)
    assert refused.code == 2, str(refused)
    assert str(repo / "state") in refused.stderr and str(repo / "manifests" / "state") in refused.stderr, str(refused)
    assert "--state" in refused.stderr and "--new-ledger" in refused.stderr, str(refused)
    assert "simulator listening" not in refused.stderr
    assert _ledgers(tmp_path) == [ledger] and _submits(ledger) == 3

    chosen = run_cli("run", "manifests/trio.yaml", "--state", "state", *SIM, cwd=repo, key=None)
    assert chosen.code == 0 and _submits(ledger) == 3, str(chosen)  # all done already: nothing paid again
    fresh = run_cli("run", str(repo / "manifests" / "trio.yaml"), "--new-ledger", *SIM, cwd=elsewhere, key=None)
    assert fresh.code == 0, str(fresh)  # the operator's choice: a new ledger in the nearer state/
    assert _ledgers(tmp_path) == [repo / "manifests" / "state" / DB_NAME, ledger]


def test_a_relative_state_resolved_in_another_directory_does_not_start_a_second_ledger(tmp_path: Path) -> None:
    """`--state state` (or RUNNER_STATE_DIR=state, from an env file or a cron line) given from another working
    directory names a folder with no ledger, while the manifest's own state/ records its jobs: a new ledger
    there would pay for the batch again. Refused, naming both; `--new-ledger` makes it on purpose (operator
    sweep, 2026-12-04: each such run paid for every job once more)."""
    repo = tmp_path / "repo"
    (repo / "manifests").mkdir(parents=True)
    manifest = write_manifest(repo / "manifests")
    first = run_cli("run", str(manifest), *SIM, cwd=repo, key=None)  # state/ beside the manifest
    assert first.code == 0, str(first)
    ledger = repo / "manifests" / "state" / DB_NAME
    for how in (["--state", "state"], []):
        env = {"RUNNER_STATE_DIR": "state"} if not how else None
        refused = run_cli("run", str(manifest), *how, *SIM, cwd=repo, key=None, env=env)
        assert refused.code == 2, str(refused)
        assert str(repo / "manifests" / "state") in refused.stderr and "--new-ledger" in refused.stderr, str(refused)
        assert "simulator listening" not in refused.stderr
    assert _ledgers(tmp_path) == [ledger] and _submits(ledger) == 3
    chosen = run_cli("run", str(manifest), "--state", "state", "--new-ledger", *SIM, cwd=repo, key=None)
    assert chosen.code == 0, str(chosen)
    assert _ledgers(tmp_path) == [ledger, repo / "state" / DB_NAME]


def test_a_copy_of_the_manifest_under_another_name_is_known_by_its_jobs(tmp_path: Path) -> None:
    """The manifest copied into a sub-folder that has an empty state/, its `name:` changed: the ledger above was
    asked for the manifest by name only, so the copy started a new ledger and paid for the whole batch again
    (operator sweep, 2026-12-05: 8 jobs paid twice). Its jobs are the same videos: refused, naming the ledger."""
    repo = tmp_path / "repo"
    repo.mkdir()
    manifest = write_manifest(repo)
    first = run_cli("run", str(manifest), *SIM, cwd=repo, key=None)
    assert first.code == 0, str(first)
    ledger = repo / "state" / DB_NAME
    sub = repo / "sub"
    (sub / "state").mkdir(parents=True)
    text = manifest.read_text()
    name = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("name:"))
    renamed = sub / "renamed.yaml"
    renamed.write_text(text.replace(f"name: {name}", f"name: {name}-v2", 1))
    refused = run_cli("run", str(renamed), *SIM, cwd=sub, key=None)
    assert refused.code == 2, str(refused)
    assert f"the jobs of '{name}-v2' are in the ledger at {repo / 'state'}" in refused.stderr, str(refused)
    assert "It records 3 of the manifest's first 3 jobs under another manifest's name" in refused.stderr
    assert _ledgers(tmp_path) == [ledger] and _submits(ledger) == 3


def test_a_second_ledger_is_refused_while_the_first_run_still_plans_the_manifest(tmp_path: Path) -> None:
    """A run of the manifest is planning it into its own state/ (its name noted in the ledger, its lock held, its
    jobs not committed yet: ~5 s for 300,000 jobs) when a second one starts from another directory with a relative
    `--state`: the ledger above was asked for the manifest's digest and its jobs, found neither, and the second
    run made its own ledger and paid for the whole batch again (operator probe, 2026-12-06: two runs of a
    300,000-job manifest, both planned and sent). The name noted before the plan is enough: refused, nothing sent."""
    from runner.manifest import load_manifest
    from runner.service.manifest_files import note_manifest_file

    repo = tmp_path / "repo"
    (repo / "manifests").mkdir(parents=True)
    manifest = write_manifest(repo / "manifests")
    first = repo / "manifests" / "state"
    first.mkdir()
    with open_ledger(first) as planning:  # the first run, as it stands between noting the file and registering
        note_manifest_file(planning, load_manifest(manifest), lambda notice: None, replans=True)
        second = run_cli("run", str(manifest), "--state", "state", *SIM, cwd=repo, key=None)
    assert second.code == 2, str(second)
    assert str(first) in second.stderr and "--new-ledger" in second.stderr, str(second)
    assert "simulator listening" not in second.stderr
    assert _ledgers(tmp_path) == [first / DB_NAME]


# ---------------------------------------------------------------- item 1: a ledger removed


def test_a_removed_ledger_is_refused_until_the_operator_says_new(tmp_path: Path) -> None:
    """ledger.db deleted after a run: the next run refuses (exit 2, nothing sent); --new-ledger starts over."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *SIM), cwd=tmp_path, key=None).code == 0
    (state / DB_NAME).unlink()
    for command in ("run", "submit", "collect"):
        refused = run_cli(*run_args(command, manifest, state, *SIM), cwd=tmp_path, key=None)
        assert refused.code == 2, str(refused)
        assert "missing" in refused.stderr and "--new-ledger" in refused.stderr
        assert "simulator listening" not in refused.stderr
        assert not (state / DB_NAME).exists()
    plan = run_cli("plan", str(manifest), "--state", str(state), cwd=tmp_path)
    assert plan.code == 0 and "missing" in plan.stderr, str(plan)
    retry = run_cli("retry", str(manifest), "--state", str(state), "--failed", cwd=tmp_path)
    assert retry.code == 2 and not (state / DB_NAME).exists(), str(retry)
    # A new ledger on purpose: the videos still in outputs/ may be its jobs' own, paid for already (a ledger lost,
    # not a batch to pay for again): those jobs are held back, unsent, until the files are moved away.
    fresh = run_cli(*run_args("run", manifest, state, *SIM, "--new-ledger"), cwd=tmp_path, key=None)
    assert fresh.code == 6, str(fresh)
    assert "created a new ledger" in fresh.stderr and "3 job(s) were not sent" in fresh.stderr, str(fresh)
    assert "already holds a video that no job in the ledger records" in fresh.stderr, str(fresh)
    assert _submits(state / DB_NAME) == 0
    (state / "outputs").rename(tmp_path / "kept-aside")
    again = run_cli(*run_args("run", manifest, state, *SIM), cwd=tmp_path, key=None)
    assert again.code == 0 and _submits(state / DB_NAME) == 3, str(again)


def test_a_ledger_removed_during_a_run_stops_it_and_keeps_its_record(tmp_path: Path,
                                                                     provider: ProviderFactory) -> None:
    """ledger.db deleted mid-run: nothing more is submitted, exit 3, the run's record is saved; restored, it
    resumes with no job paid twice."""
    sim = provider(task_seconds=0.5)
    manifest = write_manifest(tmp_path, SIX_JOBS, name="six.yaml")  # concurrency 1: one task at a time
    state = tmp_path / "state"
    proc = start_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    try:
        wait_for(lambda: sim.accepted() >= 1, what="a first paid task")
        (state / DB_NAME).unlink()
        accepted = sim.accepted()
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 6, stderr  # someone must put the saved copy back: not a success for cron
    assert "removed" in stderr and "nothing more is submitted" in stderr and "Traceback" not in stderr
    assert sim.accepted() <= accepted + 1  # at most a POST already on the wire
    rescued = sorted(state.glob("ledger.rescued-*.db"))
    assert len(rescued) == 1 and str(rescued[0]) in stderr
    shutil.move(rescued[0], state / DB_NAME)
    resumed = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert resumed.code == 0, str(resumed)
    assert counts(state, "six") == {"done": 6}
    assert sim.accepted() == 6 and sim.max_per_body() == 1


def test_a_state_directory_moved_during_a_run_is_named_where_it_went(tmp_path: Path,
                                                                   provider: ProviderFactory) -> None:
    """`mv state state.old` under a live run (archiving it, not knowing a cron run was on): the run stopped (exit 6)
    but made state/ again, stored the videos it downloaded next there and a "rescued" copy of the ledger, and said
    to move that copy to state/ledger.db — whose videos had gone with state.old (operator probe, 2026-12-06: done
    4/6, one video under the new state/, three under state.old, a ledger in each). Now it names where the state
    directory went, makes nothing at the old name, and the run told to go on there stores and pays each job once."""
    sim = provider(task_seconds=0.5)
    manifest = write_manifest(tmp_path, SIX_JOBS, name="six.yaml")  # concurrency 1: one task at a time
    state, moved = tmp_path / "state", tmp_path / "state.old"
    proc = start_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    try:
        wait_for(lambda: sim.accepted() >= 1, what="a first paid task")
        os.rename(state, moved)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 6, stderr
    assert f"was moved to {moved}" in stderr and f"--state {moved}" in stderr and "Traceback" not in stderr, stderr
    assert not state.exists(), sorted(str(p) for p in state.rglob("*"))
    resumed = run_cli(*run_args("run", manifest, moved, *sim.engine_args()), cwd=tmp_path)
    assert resumed.code == 0, str(resumed)
    assert counts(moved, "six") == {"done": 6}
    assert sim.accepted() == 6 and sim.max_per_body() == 1
    checked = run_cli("verify", str(manifest), "--state", str(moved), "--check-only", cwd=tmp_path)
    assert checked.code == 0, str(checked)


# ---------------------------------------------------------------- item 8: a symlinked ledger


def test_a_ledger_reached_through_a_symlink_is_locked_as_one(tmp_path: Path, provider: ProviderFactory) -> None:
    """state-b/ledger.db links to state-a/ledger.db: while a runner holds state-a, state-b gets exit 75."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    first, second = tmp_path / "state-a", tmp_path / "state-b"
    assert run_cli(*run_args("submit", manifest, first, *sim.engine_args()), cwd=tmp_path).code == 3
    second.mkdir()
    (second / DB_NAME).symlink_to(first / DB_NAME)
    with open_ledger(first):
        result = run_cli(*run_args("run", manifest, second, *sim.engine_args()), cwd=tmp_path)
    assert result.code == 75, str(result)
    assert sim.accepted() == 3


def test_a_lock_file_removed_under_a_live_runner_does_not_let_a_second_one_in(
    tmp_path: Path, provider: ProviderFactory,
) -> None:
    """`rm state/ledger.lock` while a runner holds it (the exit-75 line says a dead holder's lock is taken over,
    which invites it at 3am): a second runner must still get exit 75. Before, it made a new lock file, drove the
    same ledger as a second writer, turned the first one's submits in doubt and never ended (operator sweep,
    2026-12-04). The state directory itself is locked too."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("submit", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 3
    with open_ledger(state):
        (state / "ledger.lock").unlink()
        result = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
        assert result.code == 75, str(result)
        assert "lock file" in result.stderr and "removed" in result.stderr, str(result)
    assert sim.accepted() == 3  # nothing sent by the second
    after = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)  # the holder gone
    assert after.code == 0 and sim.accepted() == 3, str(after)


def test_a_ledger_copied_elsewhere_is_refused_until_reopened(tmp_path: Path, provider: ProviderFactory) -> None:
    """`runner ledger copy state/ state-new/`, then a run on state/ (an old cron line, a host not told): it would
    pay again for every job still pending that the copy's runs send. It is refused (exit 2, naming the copy);
    `runner ledger reopen state/` lets runs use it again (operator sweep, 2026-12-04: both paid)."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state, moved = tmp_path / "state", tmp_path / "state-new"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args(), "--budget", "0.6"), cwd=tmp_path).code == 3
    paid = sim.accepted()
    assert 0 < paid < 3
    copied = run_cli("ledger", "copy", str(state), str(moved), cwd=tmp_path)
    assert copied.code == 0, str(copied)
    stale = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert stale.code == 2 and f"was copied to {moved / DB_NAME}" in stale.stderr, str(stale)
    assert "runner ledger reopen" in stale.stderr and sim.accepted() == paid
    # What it says to type works as typed (the README walk: `reopen …/ledger.db` and `--ledger FILE (a URL)`).
    assert f"run with --state {moved}." in stale.stderr and f"`runner ledger reopen {state}`" in stale.stderr, \
        str(stale)
    assert run_cli(*run_args("run", manifest, moved, *sim.engine_args()), cwd=tmp_path).code == 0
    assert sim.accepted() == 3 and sim.max_per_body() == 1
    reopened = run_cli("ledger", "reopen", str(state), cwd=tmp_path)
    assert reopened.code == 0 and "runs may use it again" in reopened.stdout, str(reopened)
    # The copy still there sent the jobs this one holds pending: the book of this host's ledgers refuses them
    # (runner/service/ledger_book.py) until --new-ledger says to pay for them again.
    book = run_cli(*run_args("run", manifest, state, *sim.engine_args(), "--budget", "0"), cwd=tmp_path)
    assert book.code == 2 and f"were planned in the ledger at {moved} " in book.stderr, str(book)
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args(), "--budget", "0", "--new-ledger"),
                    cwd=tmp_path)
    assert again.code == 3, str(again)  # not refused any more (the budget keeps it from paying here)


# ---------------------------------------------------------------- item 15: one provider per ledger


def test_a_ledger_made_with_one_base_url_refuses_another(tmp_path: Path, provider: ProviderFactory) -> None:
    """Made through NOVITA_BASE_URL=<a simulator>: the default API (or another URL) is refused, naming both."""
    sim = provider(task_seconds=3600.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    made = run_cli(*run_args("submit", manifest, state, *FAST), cwd=tmp_path, env={"NOVITA_BASE_URL": sim.base_url})
    assert made.code == 3 and counts(state) == {"running": 3}, str(made)
    real = run_cli(*run_args("collect", manifest, state, *FAST, "--max-runtime", "5"), cwd=tmp_path)
    assert real.code == 2, str(real)
    assert sim.base_url in real.stderr and "https://api.novita.ai" in real.stderr
    assert "--allow-provider-change" in real.stderr and "nothing was sent" in real.stderr
    other = provider(task_seconds=0.0)
    moved = run_cli(*run_args("run", manifest, state, *other.engine_args()), cwd=tmp_path)
    assert moved.code == 2 and other.base_url in moved.stderr, str(moved)
    assert other.accepted() == 0 and counts(state) == {"running": 3}
    same = run_cli(*run_args("submit", manifest, state, "--base-url", sim.base_url + "/", *FAST), cwd=tmp_path)
    assert same.code == 3 and "nothing was sent" not in same.stderr, str(same)  # the same, with a trailing slash


def test_allow_provider_change_moves_the_ledger_on_purpose(tmp_path: Path, provider: ProviderFactory) -> None:
    """--allow-provider-change takes the new URL and records it: the next run needs no flag."""
    old, new = provider(), provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *old.engine_args()), cwd=tmp_path).code == 0
    moved = run_cli(*run_args("run", manifest, state, *new.engine_args("--allow-provider-change")), cwd=tmp_path)
    assert moved.code == 0, str(moved)
    again = run_cli(*run_args("run", manifest, state, *new.engine_args()), cwd=tmp_path)
    assert again.code == 0, str(again)
    assert new.accepted() == 0  # everything was done already


def test_simulate_ledgers_ignore_the_simulators_changing_port(tmp_path: Path) -> None:
    """--simulate listens on a new port each run: the ledger records 'simulator', not the URL."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    for _ in range(2):
        result = run_cli(*run_args("run", manifest, state, *SIM), cwd=tmp_path, key=None)
        assert result.code == 0, str(result)
    with open_ledger(state, readonly=True) as ledger:
        assert ledger.meta("provider") == "simulator"


def test_plain_http_to_a_remote_host_is_refused_before_anything(tmp_path: Path) -> None:
    """--base-url http://<not loopback>: exit 2 before the key goes anywhere; no ledger is made."""
    manifest = write_manifest(tmp_path)
    for url, source in (("http://api.novita.ai", "--base-url"), ("http://10.1.2.3:8080", "NOVITA_BASE_URL")):
        args = ["--base-url", url] if source == "--base-url" else []
        result = run_cli(*run_args("run", manifest, tmp_path / "state", *args), cwd=tmp_path,
                         env={"NOVITA_BASE_URL": url} if not args else None)
        assert result.code == 2, str(result)
        assert source in result.stderr and "https://" in result.stderr and "loopback" in result.stderr
    assert not (tmp_path / "state").exists()


# ---------------------------------------------------------------- item 22: a damaged ledger


def _flip_roots(db: Path) -> None:
    """Damage the b-tree header of every table and index root page (page 1, the schema, kept)."""
    raw = sqlite3.connect(db)
    size = int(raw.execute("PRAGMA page_size").fetchone()[0])
    roots = [int(row[0]) for row in raw.execute("SELECT rootpage FROM sqlite_master WHERE rootpage > 1")]
    raw.close()
    data = bytearray(db.read_bytes())
    for page in roots:
        for offset in range((page - 1) * size, (page - 1) * size + 32):
            data[offset] ^= 0xA5
    db.write_bytes(bytes(data))


def test_a_damaged_ledger_is_called_corrupt_by_every_command(tmp_path: Path, provider: ProviderFactory) -> None:
    """Flipped bytes: run refuses (exit 2, nothing sent), status and plan say 'corrupt' too; no raw sqlite error."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args("--budget", "0")), cwd=tmp_path).code == 3
    db = state / DB_NAME
    _flip_roots(db)
    damaged = db.read_bytes()
    result = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert result.code == 2, str(result)
    assert "corrupt" in result.stderr and ".recover" in result.stderr and "backup" in result.stderr
    assert sim.accepted() == 0 and db.read_bytes() == damaged
    for command in ("status", "plan", "ls", "export"):
        read = run_cli(command, str(manifest), "--state-dir" if command == "ls" else "--state", str(state),
                       cwd=tmp_path)
        assert read.code == 2, str(read)
        assert "corrupt" in read.stderr and "malformed" in read.stderr, str(read)


def test_collect_without_a_manifest_uses_dot_state_and_never_makes_a_ledger(tmp_path: Path) -> None:
    """`runner collect` alone reads ./state; with no ledger there it says so (exit 2) and creates nothing."""
    empty = run_cli("collect", *SIM, cwd=tmp_path, key=None)
    assert empty.code == 2, str(empty)
    assert "no ledger" in empty.stderr and str(Path("state") / DB_NAME) in empty.stderr
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("point", ["ledger-copy-made", "ledger-copy-rows", "ledger-copy-moved"])
def test_a_copy_killed_anywhere_leaves_a_destination_runs_refuse_and_a_new_copy_starts_over(
    tmp_path: Path, provider: ProviderFactory, point: str,
) -> None:
    """`runner ledger copy` killed mid-way (kill -9, the OOM killer): the destination held an empty ledger, which
    runs took for a new batch and paid for every job again (operator sweep, 2026-12-05: 4 tasks paid twice). Now,
    wherever it is killed — the new ledger built, not in place; its rows written, not committed; the source marked
    moved, the copy not yet unmarked — a run on the destination is refused, and copying again starts over."""
    sim = provider()
    here, manifest, state, moved, paid = a_batch_partly_paid(tmp_path, sim)
    killed = run_cli("ledger", "copy", str(state), str(moved), cwd=here, env={"RUNNER_TEST_CRASH_AT": point})
    assert killed.code == -signal.SIGKILL, str(killed)
    assert_runs_refuse_a_copy_cut_short(manifest, moved, state, sim, point, here)
    assert sim.accepted() == paid
    source = run_cli(*run_args("run", manifest, state, *sim.engine_args(), "--budget", "0"), cwd=here)
    if point == "ledger-copy-moved":  # the source says where its jobs went; the copy goes on from there
        assert source.code == 2 and "was copied to" in source.stderr, str(source)
    else:  # the source was never marked: it is still the ledger
        assert source.code == 3, str(source)

    copied = run_cli("ledger", "copy", str(state), str(moved), cwd=here)  # starts over
    assert copied.code == 0, str(copied)
    assert sorted(p.name for p in moved.iterdir() if p.name.startswith("ledger.db")) == ["ledger.db"]
    assert run_cli(*run_args("run", manifest, moved, *sim.engine_args()), cwd=here).code == 0
    assert sim.accepted() == 3 and sim.max_per_body() == 1
    stale = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=here)
    assert stale.code == 2 and "was copied to" in stale.stderr, str(stale)  # the copy's mark never came along


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGINT"])
@pytest.mark.parametrize("first", ["ledger-copy-made", "ledger-copy-rows"])
def test_a_copy_cut_short_while_it_clears_an_earlier_killed_copy_still_leaves_a_trace(
    tmp_path: Path, provider: ProviderFactory, first: str, signal_name: str,
) -> None:
    """A copy killed (its marked ledger or its building left), then copied again and cut short just after that copy
    removed the leftovers: the state directory held nothing of either, and a run there made a new ledger and paid for
    every job again. The new copy is now built before the old one's leftovers go: a run is refused at any point."""
    sim = provider()
    here, manifest, state, moved, paid = a_batch_partly_paid(tmp_path, sim)
    killed = run_cli("ledger", "copy", str(state), str(moved), cwd=here, env={"RUNNER_TEST_CRASH_AT": first})
    assert killed.code == -signal.SIGKILL, str(killed)
    again = run_cli("ledger", "copy", str(state), str(moved), cwd=here,
                    env={"RUNNER_TEST_CRASH_AT": "ledger-copy-cleared", "RUNNER_TEST_CRASH_SIGNAL": signal_name})
    assert again.code == (-signal.SIGKILL if signal_name == "SIGKILL" else 3), str(again)
    assert_runs_refuse_a_copy_cut_short(manifest, moved, state, sim, "ledger-copy-made", here)
    assert sim.accepted() == paid

    copied = run_cli("ledger", "copy", str(state), str(moved), cwd=here)  # starts over
    assert copied.code == 0, str(copied)
    assert sorted(p.name for p in moved.iterdir() if p.name.startswith("ledger.db")) == ["ledger.db"]
    assert run_cli(*run_args("run", manifest, moved, *sim.engine_args()), cwd=here).code == 0
    assert sim.accepted() == 3 and sim.max_per_body() == 1


def test_a_state_directory_this_user_may_not_open_exits_6_not_3(tmp_path: Path) -> None:
    """The first run was made by another user with umask 077 (state/ is theirs, drwx------): each later run, as
    the cron user, exited 3 ("work outstanding, the next run resumes"), which the README's systemd unit takes as
    success — nobody was told, every night (operator sweep, 2026-12-05). It is exit 6: someone must act."""
    unprivileged = setpriv_argv()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *SIM), cwd=tmp_path, key=None).code == 0
    for path in (state, *state.rglob("*")):
        os.chown(path, 1234, 1234, follow_symlinks=False)
    state.chmod(0o700)
    for args in (("run", str(manifest), *SIM), ("status", str(manifest))):  # state/ found beside the manifest
        proc = subprocess.run([*unprivileged, *cli_argv(*args)], cwd=tmp_path, env=clean_env({}), capture_output=True,
                              text=True, timeout=60, check=False)
        command = args[0]
        assert proc.returncode == 6, (command, proc.returncode, proc.stderr)
        assert "Permission denied" in proc.stderr and "owner or permissions of the file or folder named" in proc.stderr
        assert "Traceback" not in proc.stderr
