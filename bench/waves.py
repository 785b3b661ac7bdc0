"""The waves of a Little's-law run, from the runner's own client calls (issue 14 item 2: where the time goes).

    .venv/bin/python -m bench.waves [--case 400:40:1] [--against DIR] [--json FILE]

One ``runner -q run`` of N jobs of T seconds at concurrency C (``--rpm none``, every other setting at its
default), as bench.saturation's ``little`` runs it, against a simulator subprocess. The child is the runner
itself with its client's ``submit``, ``task_result`` and ``download`` wrapped to note when each call began and
ended (wall clock); nothing else is changed. Printed, in milliseconds from the first submit:

    wave k       the first and last submit of the k-th C submits (the spread: how far the wave's last slot
                 runs behind its first, to the end of the batch)
    first wave   the polls sent from 0.9 T to 1.5 T (the first wave's, with the scouts asked again and the probe's
                 last few): the first and the last, and how many; one sent late is a slot late to the end
    calls        median duration of a submit, a poll and a download
    last stored  the end of the last download (the engine's span, near enough)

``--against DIR`` runs the same case with another checkout right after (``PYTHONPATH=DIR``). A benchmark,
never a timed assertion. ``--child OUT ARGS…`` is the wrapped runner (used by the bench itself; it imports no bench module).
"""

from __future__ import annotations

import argparse
import atexit
import json
import runpy
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_CALLS = ("submit", "task_result", "download")


def _child(out: str, args: list[str]) -> None:
    """The runner, its client's calls timed; the calls are written to ``out`` at exit."""
    import runner.client.novita as novita

    calls: list[tuple[str, float, float]] = []

    def wrap(name: str) -> None:
        original = getattr(novita.NovitaClient, name)

        async def timed(self: Any, *a: Any, **k: Any) -> Any:
            began = time.time()
            try:
                return await original(self, *a, **k)
            finally:
                calls.append((name, began, time.time()))

        setattr(novita.NovitaClient, name, timed)

    for name in _CALLS:
        wrap(name)
    written: list[bool] = []

    def dump() -> None:
        if not written:
            written.append(True)
            Path(out).write_text(json.dumps(calls))

    atexit.register(dump)  # runner ends with os._exit after the exit callbacks
    sys.argv = ["runner", *args]
    try:
        runpy.run_module("runner", run_name="__main__", alter_sys=True)
    finally:
        dump()


def _one(tree: Path, n: int, c: int, t: float, workdir: Path) -> dict[str, Any]:
    from bench.gen_manifest import write_rows
    from bench.procs import REPO, SimProcess, runner_env

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    manifest = write_rows(n, workdir)
    out = workdir / "calls.json"
    env = runner_env(PYTHONPATH=f"{tree}:{REPO}")
    with SimProcess({"task_seconds": t}, log=workdir / "sim.log") as sim:
        # By its path: the other checkout's ``bench`` (first on the path) may not have this file.
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(out), "-q", "run", str(manifest),
               "--state", str(workdir / "state"), "--base-url", sim.base_url, "--rpm", "none",
               "--concurrency", str(c)]
        done = subprocess.run(cmd, env=env, cwd=workdir, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"runner exited {done.returncode}: {done.stderr[-2000:]}")
    return _figures(json.loads(out.read_text()), c, t)


def _figures(calls: list[list[Any]], c: int, t: float) -> dict[str, Any]:
    submits = sorted(began for name, began, _ in calls if name == "submit")
    t0 = submits[0]

    def ms(x: float) -> float:
        return round(1000 * (x - t0), 1)

    waves = [[ms(submits[k * c]), ms(submits[(k + 1) * c - 1])] for k in range(len(submits) // c)]
    # The first wave's polls (its first polls, the scouts asked again, the probe's last few): sent 0.9 T to 1.5 T.
    first = [began for name, began, _ in calls if name == "task_result" and t0 + 0.9 * t <= began < t0 + 1.5 * t]
    return {
        "waves_ms": waves,
        "spread_ms": [round(last - first_, 1) for first_, last in waves],
        "first_wave_polls_ms": [ms(min(first)), ms(max(first)), len(first)] if first else None,
        "median_call_ms": {name: round(1000 * statistics.median(
            ended - began for kind, began, ended in calls if kind == name), 2) for name in _CALLS},
        "last_stored_ms": ms(max(ended for name, _, ended in calls if name == "download")),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child(argv[1], argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="400:40:1", help="N:C:T")
    parser.add_argument("--against", type=Path, default=None, help="another checkout, run right after")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    from bench.procs import REPO, machine

    n, c, t = args.case.split(":")
    workdir = Path(tempfile.mkdtemp(prefix="bench-waves-"))
    print(f"machine: {machine()}")
    trees = {"this tree": REPO, **({"against": args.against.resolve()} if args.against else {})}
    figures = {name: _one(tree, int(n), int(c), float(t), workdir / name.replace(" ", "-"))
               for name, tree in trees.items()}
    for name, fig in figures.items():
        print(json.dumps({"tree": name, **fig}))
    if args.json is not None:
        args.json.write_text(json.dumps({"case": args.case, "figures": figures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
