"""The demo a newcomer follows — `make demo`, then `runner --help`'s examples, or the other way round — works as
printed in either order: one story, the simulated demo in state/demo (a simulated ledger in state/ would refuse the
real batches that go there, and a second one for the demo is refused by the second-ledger guard).

It did not: `runner --help` said `runner run manifests/demo.yaml --simulate` (into state/), after which `make demo`
(`--state state/demo`) was refused as a second ledger of the same jobs, and `runner run manifests/cities.yaml` for
real was refused as another provider than the simulator state/ recorded.
"""

from __future__ import annotations

import re
import shlex
import shutil
import signal
from pathlib import Path

import pytest

from test_cli_support import ProviderFactory, counts, finish_cli, provider, run_cli, start_cli, wait_for

__all__ = ["provider"]  # the fixture, imported for pytest

ROOT = Path(__file__).resolve().parents[2]
QUICK = ("--sim-task-seconds", "0", "--rpm", "none", "--poll-interval", "0.05")  # the simulator's time, not ours


def _root_examples(cwd: Path) -> list[list[str]]:
    """The commands under `Examples:` in `runner --help`, comments dropped."""
    shown = run_cli("--help", cwd=cwd)
    assert shown.code == 0, str(shown)
    block = shown.stdout.split("Examples:", 1)[1].split("\n\n", 1)[0]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip().startswith("runner ")]


def _make_demo() -> list[str]:
    """The command `make demo` runs (the Makefile's recipe, `$(BIN)/runner` read as `runner`)."""
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8").split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    line = next(line for line in recipe.splitlines() if "/runner " in line)
    return ["runner", *shlex.split(line.split("/runner ", 1)[1])]


def _as_printed(cwd: Path, words: list[str]) -> None:
    assert words[0] == "runner", words
    args = words[1:]
    if "--simulate" in args:
        args = [*args, *QUICK]
    result = run_cli(*args, cwd=cwd, key=None)
    assert result.code == 0, str(result)


@pytest.mark.parametrize("make_demo_first", [True, False], ids=["make-demo-first", "help-first"])
def test_make_demo_and_the_help_examples_work_in_either_order(tmp_path: Path, make_demo_first: bool) -> None:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    (tmp_path / "state").mkdir()  # as in a clone (state/.gitkeep)
    examples = _root_examples(tmp_path)
    simulated = [words for words in examples if "--simulate" in words]
    assert simulated and all(re.search(r"--state state/demo\b", shlex.join(words)) for words in simulated), examples
    # The README: "every example of `runner --help` on the demo says `--state state/demo`" (`runner plan` did not, and
    # after `make demo` priced the 7 jobs as still to submit: the README walk, 2026-12-05).
    on_the_demo = [shlex.join(words) for words in examples if "manifests/demo.yaml" in words]
    assert [line for line in on_the_demo if not re.search(r"--state state/demo\b", line)] == [], on_the_demo
    steps = [_make_demo(), *examples] if make_demo_first else [*examples, _make_demo()]
    for words in steps:
        _as_printed(tmp_path, words)
    assert not (tmp_path / "state" / "ledger.db").exists()  # state/ is left to the real batches


def test_a_simulated_ledger_and_a_real_one_of_the_demo_do_not_refuse_each_other(tmp_path: Path,
                                                                               provider: ProviderFactory) -> None:
    """The second-ledger guard refuses a new ledger that would pay for a batch again. A simulated run pays nothing,
    and a simulator's ledger holds nothing paid: the demo run for real in state/, then `make demo`, was refused ('a new
    ledger there would pay for the batch again'); so was a real run elsewhere after a simulated demo in state/. A real
    ledger beside a real one is still refused (here by the second-ledger guard; in another folder by the book of this
    host's ledgers, so the old layout's real run is at another provider)."""
    sim = provider()
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "manifests", clone / "manifests")
    (clone / "state").mkdir()
    real = ("--base-url", sim.base_url, "--rpm", "none", "--poll-interval", "0.05")
    assert run_cli("run", "manifests/demo.yaml", *real, cwd=clone).code == 0  # the real thing, in state/
    _as_printed(clone, _make_demo())
    again = run_cli("run", "manifests/demo.yaml", "--state", "state/real", *real, cwd=clone)
    assert again.code == 2 and "would pay for the batch again" in again.stderr, str(again)  # the guard still holds

    other = tmp_path / "old-layout"  # runner --help's old example: the simulated demo in state/
    shutil.copytree(ROOT / "manifests", other / "manifests")
    (other / "state").mkdir()
    _as_printed(other, ["runner", "run", "manifests/demo.yaml", "--simulate"])
    elsewhere = ("--base-url", provider().base_url, *real[2:])
    paid = run_cli("run", "manifests/demo.yaml", "--state", "state/real", *elsewhere, cwd=other)
    assert paid.code == 0, str(paid)


def test_after_make_demo_the_commands_help_examples_say_where_its_ledger_is(tmp_path: Path) -> None:
    """After `make demo` (its ledger in state/demo), the examples of `runner status --help`, `runner ls --help`,
    `runner export --help`… say `runner status manifests/demo.yaml`, which looks in state/: "no ledger in state
    (no ledger.db): nothing has run with this state directory", and no word of state/demo (the README walk,
    2026-12-05). The refusal names the demo's ledger now; and once a real batch has a ledger in state/, `status`'s zero
    counts come with a warning naming it."""
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    (tmp_path / "state").mkdir()
    _as_printed(tmp_path, _make_demo())
    demo = tmp_path / "state" / "demo"
    for args in (["status"], ["ls", "--only", "failed"], ["export", "--format", "csv", "--to", "demo.csv"],
                 ["verify", "--check-only"], ["retry", "--failed"]):
        refused = run_cli(args[0], "manifests/demo.yaml", *args[1:], cwd=tmp_path, key=None)
        assert refused.code == 2, str(refused)
        assert f"--state {demo}" in refused.stderr, str(refused)
    other = run_cli("run", "manifests/draft-to-final.yaml", "--simulate", *QUICK, cwd=tmp_path, key=None)
    assert other.code == 0, str(other)  # a ledger in state/ that holds no job of the demo
    status = run_cli("status", "manifests/demo.yaml", cwd=tmp_path, key=None)
    assert status.code == 0 and f"--state {demo}" in status.stderr, str(status)
    listed = run_cli("ls", "manifests/demo.yaml", cwd=tmp_path, key=None)
    assert listed.code == 2 and f"--state {demo}" in listed.stderr, str(listed)


def test_make_demo_stopped_while_its_tasks_run_then_made_again_finishes(tmp_path: Path) -> None:
    """`make demo`, stopped (Ctrl-C, SIGTERM: the README says a stop is safe) while its tasks ran, then `make demo`
    again: each --simulate run starts a simulator of its own, which knew none of the first run's tasks, so the second
    sat at "running 3" with no word of why until the runtime ran out, and every `make demo` after it too (a task the
    provider no longer knows is lost only after 6 h over three runs) — the newcomer's walk, 2026-12-06. A provider
    outlives the runner that paid it: the simulator of a --simulate run knows the tasks its ledger records."""
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    (tmp_path / "state").mkdir()
    demo, state = _make_demo(), tmp_path / "state" / "demo"
    first = start_cli(*demo[1:], "--sim-task-seconds", "600", "--rpm", "none", cwd=tmp_path, key=None)
    try:
        wait_for(lambda: (state / "ledger.db").exists() and counts(state, "demo-timelapses").get("running", 0) > 0,
                 what="the first run's tasks running")
    finally:
        first.send_signal(signal.SIGTERM)
    stopped = finish_cli(first)
    assert first.returncode == 3, stopped
    running = counts(state, "demo-timelapses").get("running", 0)
    assert running > 0, stopped
    again = run_cli(*demo[1:], *QUICK, "--max-runtime", "30", cwd=tmp_path, key=None)
    assert again.code == 0, str(again)
    assert counts(state, "demo-timelapses") == {"done": 7}, str(again)
