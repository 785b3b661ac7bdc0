"""bench/cpusample.py: the samples of a run are sorted into the runner's parts, and the wrapped runner writes
its samples although runner ends with ``os._exit``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.cpusample import part_of, read_stacks, summarise

ROOT = Path(__file__).resolve().parents[2]
RUNNER = "/repo/runner"


def _stack(*frames: str) -> str:
    return ";".join(frames)


def test_a_sample_belongs_to_the_first_part_its_stack_names() -> None:
    importing = _stack(f"main ({RUNNER}/_entry.py:1)", "_find_and_load (<frozen importlib._bootstrap>:1)",
                       f"<module> ({RUNNER}/ledger/api.py:3)")
    assert part_of(importing) == "imports"  # a ledger module being imported is an import, not the ledger
    writing = _stack(f"_submit_one ({RUNNER}/engine/submit.py:9)", f"mark_running ({RUNNER}/ledger/sqlite/ledger.py:5)")
    assert part_of(writing) == "ledger"
    assert part_of(_stack(f"_submit_one ({RUNNER}/engine/submit.py:9)", "send (httpx/_client.py:1)")) == "submits"
    assert part_of(_stack("run (asyncio/base_events.py:1)", "select (selectors.py:468)")) == "event loop"
    assert part_of("main (elsewhere.py:1)") == "other"


def test_the_shares_add_up_over_every_sample() -> None:
    stacks = [
        (_stack(f"_poll ({RUNNER}/engine/sources/poller.py:1)", "send (/x/site-packages/httpx/_client.py:2)"), 3),
        (_stack(f"_poll ({RUNNER}/engine/sources/poller.py:1)", f"load_json ({RUNNER}/client/untrusted.py:4)"), 1),
        (_stack("_find_and_load (<frozen importlib._bootstrap>:1)", "<module> (/x/site-packages/pydantic/main.py:1)"), 4),
    ]
    figures = summarise(stacks)
    assert figures["samples"] == 8
    assert figures["parts_pct"] == [("polls", 50.0), ("imports", 50.0)]
    # the libraries the samples end in, out of the 4 samples that are not imports
    assert figures["libraries_pct_of_not_imports"] == [("httpx", 75.0), ("runner/client/untrusted.py", 25.0)]
    assert figures["runner_inclusive_pct"][0] == (f"_poll ({RUNNER}/engine/sources/poller.py)", 50.0)


def test_the_wrapped_runner_writes_its_samples(tmp_path: Path) -> None:
    out = tmp_path / "stacks.txt"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cpusample", "--child", str(out), "plan", str(ROOT / "manifests" / "demo.yaml"),
         "--state", str(tmp_path / "state")],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    stacks = read_stacks(out)
    assert stacks and sum(count for _, count in stacks) >= 5  # a plan costs tens of ms of CPU: a sample each ~4 ms
    assert any("_find_and_load" in stack for stack, _ in stacks)
