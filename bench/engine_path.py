"""CPU per job of the engine's own path, without HTTP: the ledger transitions and reads the lanes make, and
the store's sink, called in a job's order (write-ahead, task id, a poll's SUCCEED applied, the download's read,
prepare + open_sink, commit, done). Two trees side by side, alternating, in fresh processes:

    git archive <commit> | tar -x -C /tmp/before
    .venv/bin/python -m bench.engine_path --before /tmp/before --jobs 2000 --repeat 5

Prints each run's user+sys CPU per stage in microseconds a job, then each side's minimum over the runs (the
machine's other load only ever adds). A benchmark, never a timed assertion. ``--child`` is one measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # as bench.procs has it (the child imports no bench module)


def _child(jobs: int) -> dict[str, float]:
    from runner.engine.updates import TaskUpdate, UpdateConsumer
    from runner.jobs import JobSpec
    from runner.layout import output_path
    from runner.ledger import open_ledger
    from runner.novita_wire import TaskStatus
    from runner.storage import beside_name
    from runner.storage.local import LocalStore

    state = Path(tempfile.mkdtemp(prefix="engine_path"))
    ledger = open_ledger(state)
    ledger.register("m", "d", [JobSpec.build(
        model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5, "aspect_ratio": "16:9"},
        vars={"i": i}, repeat=1, output=f"clip-{i}.mp4", estimated_usd=0.56) for i in range(jobs)])
    ledger.start_run(argv=["bench"])
    consumer, store = UpdateConsumer(ledger), LocalStore(state)
    spent: dict[str, float] = {}
    last = [0.0]

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def stage(name: str) -> None:
        now = cpu()
        spent[name] = spent.get(name, 0.0) + now - last[0]
        last[0] = now

    for i, (_, job) in enumerate(ledger.pending_batch("m", limit=jobs)):
        key = job.key
        last[0] = cpu()
        attempt = ledger.mark_submitting(key)
        assert attempt is not None
        stage("write-ahead")
        ledger.mark_running(key, attempt, task_id=f"t{i}", http_status=200)
        stage("task id")
        consumer.apply(TaskUpdate(task_id=f"t{i}", key=key, status=TaskStatus.SUCCEED, source="poll", received_at=0.0,
                                  video_url="https://cdn.test/v.mp4", url_expires_at=9e9, debug={"seed": i}))
        stage("succeeded")
        with_targets = getattr(ledger, "get_with_targets", None)  # the tree before it had get + targets_of
        targets = with_targets(key)[1] if with_targets is not None else (ledger.get(key), ledger.targets_of(key))[1]
        stage("download's read")
        rel = output_path(*targets[0])
        store.prepare(rel)
        sink = store.open_sink(rel, beside=beside_name(rel, key))
        stage("prepare + open_sink")
        sink.write(b"\0\0\0\x18ftypmp42" + bytes(4096))
        stored = sink.commit()
        stage("sink commit")
        ledger.mark_done(key, path=stored.rel, sha256=stored.sha256, bytes=stored.bytes)
        stage("done")
    ledger.close()
    return {name: 1e6 * seconds / jobs for name, seconds in spent.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="a tree of the runner to compare with this one")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.jobs)))
        return 0
    sides = {"after": str(REPO)} if args.before is None else {"before": str(args.before.resolve()), "after": str(REPO)}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    here = Path(__file__).resolve()
    empty = tempfile.mkdtemp(prefix="engine_path")
    for r in range(args.repeat):
        for name, tree in (list(sides.items()) if r % 2 == 0 else list(reversed(sides.items()))):
            env = {**os.environ, "PYTHONPATH": tree}
            out = subprocess.run([sys.executable, str(here), "--child", "--jobs", str(args.jobs)],
                                 env=env, cwd=empty, check=True, capture_output=True, text=True).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
            print(f"{name:6s} " + "  ".join(f"{k} {v:.0f}" for k, v in runs[name][-1].items())
                  + f"  total {sum(runs[name][-1].values()):.0f} us/job", flush=True)
    for name, results in runs.items():
        best = {k: min(result[k] for result in results) for k in results[0]}
        print(f"min {name:6s} " + "  ".join(f"{k} {v:.0f}" for k, v in best.items())
              + f"  total {sum(best.values()):.0f} us/job")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
