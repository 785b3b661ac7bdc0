"""A state directory used by two users: ``sudo runner run`` once, then runs as oneself (or two users sharing it).

The other user's files are made here by ``chown`` to a uid of no one; the CLI runs as root without the
capabilities that let root write anyone's files (``setpriv``), so file modes apply to it as to any user. Every run
is counted against the simulator's books: what another user's files refuse is refused before anything is paid.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from runner.ledger.rescue import CRASH_ENV, RESCUE_NAME, pending_entries

from test_cli_support import (
    KEY,
    THREE_JOBS,
    Provider,
    ProviderFactory,
    clean_env,
    cli_argv,
    counts,
    provider,
    run_args,
    run_cli,
    setpriv_argv,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

OTHER = 4321  # a uid and gid of no one here: the user `sudo` ran as, seen from the operator's account
EXIT_LOCAL = 6


def _as_user(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*setpriv_argv(), *cli_argv(*args)], cwd=cwd, env=clean_env({"NOVITA_API_KEY": KEY}),
                          capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _give_away(*paths: Path) -> None:
    for path in paths:
        os.chown(path, OTHER, OTHER, follow_symlinks=False)


def _run_by_sudo(tmp_path: Path, sim: Provider) -> tuple[Path, Path]:
    """The three jobs run to the end by a `sudo runner run` (a new state directory, closed cleanly: no -wal, no -shm
    left), then a fourth job added to the manifest: (manifest, state)."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    write_manifest(tmp_path, THREE_JOBS.replace("owl]", "owl, fox]"))
    return manifest, state


def test_a_state_directory_sudo_made_is_read_by_status_plan_and_export_and_refused_by_run(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """`sudo runner run` made state/ (root's, 755, files 644), then `runner status` as oneself: SQLite reads a WAL
    ledger through a ``-shm`` it makes beside it, which this user may not, and every read-only command failed, exit 6
    "cannot write the ledger … check that the directory exists and is writable" (an existing test passed only
    because its own read had left a -shm behind). They read a private copy now; a run is refused before anything is
    sent, naming the file, its owner and the chown that gives it back."""
    setpriv_argv()
    sim = provider()
    manifest, state = _run_by_sudo(tmp_path, sim)
    assert not (state / "ledger.db-shm").exists()
    _give_away(state, *state.rglob("*"))

    shown = _as_user(tmp_path, "status", str(manifest), "--state", str(state), "--json")
    assert shown.returncode == 0, shown.stderr
    assert '"done": 3' in shown.stdout, shown.stdout
    planned = _as_user(tmp_path, "plan", str(manifest), "--state", str(state))
    assert planned.returncode == 0 and "would submit 1 job(s)" in planned.stdout, (planned.stdout, planned.stderr)
    exported = _as_user(tmp_path, "export", str(manifest), "--state", str(state), "--format", "jsonl")
    assert exported.returncode == 0 and len(exported.stdout.splitlines()) == 3, (exported.stdout, exported.stderr)

    refused = _as_user(tmp_path, *run_args("run", manifest, state, *sim.engine_args()))
    assert refused.returncode == EXIT_LOCAL, refused.stderr
    assert f"belongs to uid {OTHER}" in refused.stderr and f"sudo chown -R root {state}" in refused.stderr
    assert sim.accepted() == 3
    assert not list(state.glob("ledger.db-*")), "a read left a file in the other user's folder"


def test_a_wal_left_by_a_sudo_run_is_named_with_its_owner(tmp_path: Path, provider: ProviderFactory) -> None:
    """A `sudo runner run` killed leaves ``ledger.db-wal`` and ``-shm`` root's in the operator's state directory:
    the next run said "cannot write the ledger ledger.db … check that the directory exists and is writable", and
    both were the operator's. It names the WAL, its owner and mode, and the chown."""
    setpriv_argv()
    sim = provider(task_seconds=60.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    killed = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path,
                     env={CRASH_ENV: "write-ahead-group"})
    assert killed.code == -signal.SIGKILL, str(killed)
    assert (state / "ledger.db-wal").exists()
    _give_away(state / "ledger.db-wal", state / "ledger.db-shm")

    refused = _as_user(tmp_path, *run_args("run", manifest, state, *sim.engine_args()))
    assert refused.returncode == EXIT_LOCAL, refused.stderr
    assert f"{state / 'ledger.db-wal'} belongs to uid {OTHER} (mode 0644)" in refused.stderr, refused.stderr
    assert f"sudo chown -R root {state}" in refused.stderr and "Nothing recorded was lost" in refused.stderr
    assert sim.accepted() == 0


def test_a_rescue_journal_sudo_left_is_refused_before_anything_is_sent(tmp_path: Path,
                                                                       provider: ProviderFactory) -> None:
    """A `sudo runner run` met a full disk and kept an accepted task id in ``rescue.jsonl`` (made 600: root's
    alone). The operator's next run could not read it: one log line, the job held in doubt as if its task were
    unknown, and the run went on sending, with no journal to keep the next id the ledger cannot record. It is
    refused before anything is sent, naming the journal, its owner and the chown; once given back, the id is
    recorded and its video collected."""
    unprivileged = setpriv_argv()
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args("--budget", "0")), cwd=tmp_path).code == 3
    full = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path, max_file_bytes=52_000,
                   env={CRASH_ENV: "rescue-journalled"})
    assert full.code == -signal.SIGKILL, f"the crash point was not reached: {full}"
    journalled = pending_entries(state)
    assert journalled
    left = counts(state)  # (the killed run's other POSTs may still be answered: the simulator's count is not final)
    _give_away(state / RESCUE_NAME)
    (state / RESCUE_NAME).chmod(0o600)  # as runners before 2026-12-05 made it, whatever the umask

    refused = _as_user(tmp_path, *run_args("run", manifest, state, *sim.engine_args()))
    assert refused.returncode == EXIT_LOCAL, refused.stderr
    assert f"{state / RESCUE_NAME} belongs to uid {OTHER} (mode 0600)" in refused.stderr, refused.stderr
    assert f"sudo chown -R root {state}" in refused.stderr
    assert counts(state) == left and pending_entries(state) == journalled  # nothing read, written or sent

    os.chown(state / RESCUE_NAME, 0, 0)
    again = subprocess.run([*unprivileged, *cli_argv(*run_args("run", manifest, state, *sim.engine_args()))],
                           cwd=tmp_path, env=clean_env({"NOVITA_API_KEY": KEY}), capture_output=True, text=True,
                           timeout=60, check=False)
    found = counts(state)
    assert again.returncode == (4 if found.get("in_doubt") else 0), again.stderr
    assert found.get("done", 0) >= 1 and sim.max_per_body() == 1, found
    assert pending_entries(state) == []


def _umask_002(argv: list[str]) -> list[str]:
    return ["sh", "-c", 'umask 002 && exec "$@"', "sh", *argv]


def test_two_users_sharing_a_state_directory_through_a_group_both_run_it(tmp_path: Path,
                                                                         provider: ProviderFactory) -> None:
    """Two users share state/ through a group (setgid folder, umask 002), as the README's cron set-ups do: the first
    made the ledger and its lock 0644 whatever the umask (SQLite's own default, and the lock's 0644), the journals
    0600, so the second was refused every run. They are made as the umask says now: the second runs the batch on."""
    unprivileged = setpriv_argv()
    sim = provider()
    manifest = write_manifest(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, 0, OTHER)
    shared.chmod(0o2775)
    state = shared / "state"
    first = subprocess.run(_umask_002(cli_argv(*run_args("run", manifest, state, *sim.engine_args()))), cwd=tmp_path,
                           env=clean_env({"NOVITA_API_KEY": KEY}), capture_output=True, text=True, timeout=60,
                           check=False)
    assert first.returncode == 0, first.stderr
    for path in (state, *state.rglob("*")):  # the first user's files (the group is the folder's: setgid)
        os.chown(path, OTHER, -1, follow_symlinks=False)
    write_manifest(tmp_path, THREE_JOBS.replace("owl]", "owl, fox]"))

    second = subprocess.run(
        _umask_002([*unprivileged, "--groups", str(OTHER), *cli_argv(*run_args("run", manifest, state,
                                                                                *sim.engine_args()))]),
        cwd=tmp_path, env=clean_env({"NOVITA_API_KEY": KEY}), capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in second.stderr, second.stderr
    assert second.returncode == 0, second.stderr
    assert counts(state) == {"done": 4} and sim.accepted() == 4 and sim.max_per_body() == 1
    assert (state / "outputs" / "trio" / "fox.mp4").is_file()


def test_a_video_folder_another_user_made_700_holds_its_jobs_back_naming_its_owner(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """`sudo runner run` under umask 077 made outputs/trio/ root's, 700: the operator's next run held the new job back
    (nothing paid), saying only "Permission denied; fix the folder (its permissions, a file in its way)". It names the
    folder's owner and mode now, and the chown."""
    setpriv_argv()
    sim = provider()
    manifest, state = _run_by_sudo(tmp_path, sim)
    folder = state / "outputs" / "trio"
    _give_away(folder)
    folder.chmod(0o700)

    held = _as_user(tmp_path, *run_args("run", manifest, state, *sim.engine_args()))
    assert held.returncode == EXIT_LOCAL, held.stderr
    assert f"the folder {folder} belongs to uid {OTHER} (mode 0700)" in held.stderr, held.stderr
    assert f"sudo chown -R root {folder}" in held.stderr and "Nothing was paid for them" in held.stderr
    assert sim.accepted() == 3 and counts(state) == {"done": 3, "pending": 1}


@pytest.mark.parametrize("command", ["hf", "report"])
def test_an_export_folder_another_user_wrote_is_exit_6_naming_its_owner(tmp_path: Path, provider: ProviderFactory,
                                                                        command: str) -> None:
    """`sudo runner export --format hf` (or `report`) once, then the nightly export as oneself: exit 3, "stopped, the
    next run resumes", which a cron unit takes as success, and nothing said whose the folder was: the dataset was
    never written again, silently. It is exit 6 now, naming the folder, its owner and the chown."""
    setpriv_argv()
    sim = provider()
    manifest, state = _run_by_sudo(tmp_path, sim)
    folder = tmp_path / "out"
    args = (("export", str(manifest), "--format", "hf") if command == "hf" else ("report", str(manifest)))
    assert run_cli(*args, "--to", str(folder), "--state", str(state), cwd=tmp_path).code == 0
    _give_away(folder, *folder.rglob("*"))

    refused = _as_user(tmp_path, *args, "--to", str(folder), "--state", str(state))
    assert refused.returncode == EXIT_LOCAL, refused.stderr
    assert f"the folder {folder} belongs to uid {OTHER} (mode 0755)" in refused.stderr, refused.stderr
    assert f"sudo chown -R root {folder}" in refused.stderr
