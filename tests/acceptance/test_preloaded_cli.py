"""A command forked from the preloaded runner (:mod:`preloaded_cli`, what :func:`test_cli_support.run_cli` uses) ends
as the same command run by a new ``python -m runner``: exit code (a signal's too), stdout, stderr, its environment,
working directory and umask; and what a fork cannot take again starts a new interpreter."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import preloaded_cli
import pytest

from test_cli_support import KEY, ProviderFactory, clean_env, cli_argv, done_trio, provider, run_args

__all__ = ["provider"]  # the fixture, imported for pytest

# These test the fork itself, which TEST_CLI_FRESH=1 (every command a new interpreter, to compare) turns off.
pytestmark = pytest.mark.skipif(os.environ.get(preloaded_cli.FRESH_ENV) == "1", reason="every command a new interpreter")

_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d|\d+(\.\d+)? ?(s|ms)\b")


def _both(args: list[str], cwd: Path, extra: dict[str, str] | None = None) -> tuple[tuple[int, str, str], ...]:
    """(code, stdout, stderr) of ``runner *args`` forked, then run by a new interpreter; times blanked."""
    env = clean_env({"NOVITA_API_KEY": KEY, **(extra or {})})
    forked = preloaded_cli.run(args, cwd=cwd, env=env, base=clean_env(), timeout=60)
    assert forked is not None, "not forked"
    fresh = subprocess.run(cli_argv(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)
    return tuple((code, _STAMP.sub("T", out), _STAMP.sub("T", err))
                 for code, out, err in ((forked.code, forked.stdout, forked.stderr),
                                        (fresh.returncode, fresh.stdout, fresh.stderr)))


def test_read_commands_answer_alike_forked_or_fresh(tmp_path: Path, provider: ProviderFactory) -> None:
    manifest, state, _sim, keys = done_trio(tmp_path, provider)
    relative = manifest.name  # resolved in the working directory
    for args, extra, code in (
        (["--version"], None, 0),
        (["status", relative, "--state", "state", "--json"], None, 0),
        (["ls", relative, "--state", "state"], None, 0),
        (["show", keys["cat"], "--state", str(state)], None, 0),
        (["plan", "missing.yaml", "--state", str(state)], None, 2),
        (["status", relative, "--state", "state"], {"RUNNER_CONCURENCY": "8"}, 0),  # a misspelt variable: warned of
        (["bogus-command"], None, 2),
    ):
        forked, fresh = _both(args, tmp_path, extra)
        assert forked == fresh
        assert forked[0] == code, forked
    assert "RUNNER_CONCURENCY" in _both(["status", relative, "--state", "state"], tmp_path, {"RUNNER_CONCURENCY": "8"})[0][2]


def test_a_command_killed_by_a_signal_reports_it_as_a_new_interpreter_does(
        tmp_path: Path, provider: ProviderFactory) -> None:
    manifest, state, _sim, _keys = done_trio(tmp_path, provider)
    codes = []
    for to in ("a", "b"):
        args = ["export", str(manifest), "--state", str(state), "--format", "hf", "--to", to]
        env = clean_env({"NOVITA_API_KEY": KEY, "RUNNER_TEST_CRASH_AT": "export-rows"})
        if to == "a":
            forked = preloaded_cli.run(args, cwd=tmp_path, env=env, base=clean_env(), timeout=60)
            assert forked is not None
            codes.append(forked.code)
        else:
            codes.append(subprocess.run(cli_argv(*args), cwd=tmp_path, env=env, capture_output=True, timeout=60,
                                        check=False).returncode)
    assert codes == [-9, -9]


def test_a_forked_run_makes_its_files_under_the_test_process_umask(tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    (tmp_path / "trio.yaml").write_text("name: trio\nprompt: a {x}\nmatrix:\n  x: [cat]\n", encoding="utf-8")
    old = os.umask(0o077)
    try:
        done = preloaded_cli.run(run_args("run", tmp_path / "trio.yaml", tmp_path / "state", *sim.engine_args()),
                                 cwd=tmp_path, env=clean_env({"NOVITA_API_KEY": KEY}), base=clean_env(), timeout=60)
    finally:
        os.umask(old)
    assert done is not None and done.code == 0, done
    assert (tmp_path / "state" / "ledger.db").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("extra", [{"PYTHONPATH": "/nowhere"}, {"LC_ALL": "C"}, {"TMPDIR": "/var/tmp"},
                                   {"SSL_CERT_FILE": "/nowhere.pem"}])
def test_what_an_interpreter_reads_as_it_starts_is_never_forked(tmp_path: Path, extra: dict[str, str]) -> None:
    assert preloaded_cli.run(["--version"], cwd=tmp_path, env=clean_env(extra), base=clean_env(), timeout=60) is None
    assert preloaded_cli.run(["--version"], cwd=tmp_path, env=clean_env({"RUNNER_RPM": "5", "HTTPS_PROXY": "x"}),
                             base=clean_env(), timeout=60) is not None


def test_a_command_past_its_timeout_is_killed_and_said_as_subprocess_run_says_it(tmp_path: Path) -> None:
    """`runner simulate` serves until stopped: past the timeout it is killed (the waiter's answer, its wait status,
    comes only once it is gone) and TimeoutExpired is raised with what it wrote."""
    with pytest.raises(subprocess.TimeoutExpired) as expired:
        preloaded_cli.run(["simulate", "--port", "0"], cwd=tmp_path, env=clean_env(), base=clean_env(), timeout=0.5)
    assert expired.value.timeout == 0.5
