"""The overhead baseline: a straightforward anyio + httpx client, no ledger, no verification.

    python -m bench.baseline_client BASE_URL prompts.csv OUTDIR --concurrency 16 --poll-interval 0.05

For every row of ``prompts.csv`` (the ``bench.gen_manifest --rows`` file): POST
the submit, poll task-result every ``--poll-interval`` until it ends, stream the
video to ``OUTDIR``. A semaphore bounds the jobs in flight. This is what a
careful user would write in an afternoon — the yardstick ``bench/overhead.py``
holds the runner's CPU per job against. Prints ``jobs polls bytes``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import anyio
import httpx

SUBMIT = "/v3/async/kling-v3.0-pro-t2v"
RESULT = "/v3/async/task-result"


async def _job(http: httpx.AsyncClient, body: dict[str, object], dest: Path, interval: float,
               totals: list[int], headers: dict[str, str]) -> None:
    response = await http.post(SUBMIT, json=body, headers=headers)
    response.raise_for_status()
    task_id = response.json()["task_id"]
    while True:
        await anyio.sleep(interval)
        totals[1] += 1
        result = await http.get(RESULT, params={"task_id": task_id}, headers=headers)
        result.raise_for_status()
        data = result.json()
        status = data["task"]["status"]
        if status == "TASK_STATUS_SUCCEED":
            url = data["videos"][0]["video_url"]
            break
        if status == "TASK_STATUS_FAILED":
            return
    async with http.stream("GET", url) as video:
        video.raise_for_status()
        with dest.open("wb") as handle:
            async for chunk in video.aiter_bytes(65536):
                handle.write(chunk)
                totals[2] += len(chunk)
    totals[0] += 1


async def run(base_url: str, rows: Path, out: Path, concurrency: int, interval: float) -> list[int]:
    out.mkdir(parents=True, exist_ok=True)
    headers = {"Authorization": f"Bearer {os.environ.get('NOVITA_API_KEY', 'baseline-key')}"}
    totals = [0, 0, 0]
    limit = anyio.Semaphore(concurrency)
    timeout = httpx.Timeout(60.0, connect=10.0)
    limits = httpx.Limits(max_connections=concurrency + 16, max_keepalive_connections=concurrency + 16)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits) as http:

        async def one(i: int, body: dict[str, object]) -> None:
            async with limit:
                await _job(http, body, out / f"{i}.mp4", interval, totals, headers)

        async with anyio.create_task_group() as tg:
            with rows.open(newline="") as handle:
                for i, row in enumerate(csv.DictReader(handle)):
                    tg.start_soon(one, i, {"prompt": row["prompt"], "duration": int(row["duration"])})
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base_url")
    parser.add_argument("rows", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--poll-interval", type=float, default=0.05)
    args = parser.parse_args(argv)
    jobs, polls, size = anyio.run(run, args.base_url, args.rows, args.out, args.concurrency, args.poll_interval)
    print(jobs, polls, size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
