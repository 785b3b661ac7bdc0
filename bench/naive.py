"""The naive baseline: the threaded stdlib runner an engineer writes in an afternoon.

    python -m bench.naive BASE_URL prompts.csv OUTDIR --concurrency 40 --poll-interval 1

Threads, ``http.client`` and a SQLite ledger, nothing else: ``--concurrency``
worker threads each take the next row of ``prompts.csv`` (the
``bench.gen_manifest --rows`` file) and

1. write the job as ``submitting`` into ``OUTDIR/ledger.db`` and commit (the
   write before each POST, so a crash leaves a trace of a possibly paid task),
2. POST it, record ``running`` with the task id,
3. poll task-result every ``--poll-interval`` seconds until it ends (no eta,
   no learned task time: a fixed sleep, as the official SDKs do),
4. GET the video into ``OUTDIR/<n>.mp4`` and record ``done``.

Each thread keeps one HTTP/1.1 keep-alive connection to the provider (and one
to the video host), one shared SQLite connection behind a lock. No retries, no
rate limiting, no verification: the yardstick ``bench/saturation.py`` holds the
runner's wall time and CPU per job against, in the same run on the same
simulator. Prints ``jobs polls bytes``. A benchmark program, never a test.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import queue
import sqlite3
import sys
import threading
import time
import urllib.parse
from pathlib import Path

SUBMIT = "/v3/async/kling-v3.0-pro-t2v"
RESULT = "/v3/async/task-result"


class Ledger:
    """One SQLite connection shared by the threads, a lock around each write (commit per write)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.lock = threading.Lock()
        self.db.execute("CREATE TABLE IF NOT EXISTS jobs (n INTEGER PRIMARY KEY, body TEXT, state TEXT,"
                        " task_id TEXT, path TEXT, updated REAL)")
        self.db.commit()

    def write(self, sql: str, *args: object) -> None:
        with self.lock:
            self.db.execute(sql, args)
            self.db.commit()


class Worker(threading.Thread):
    def __init__(self, base: urllib.parse.SplitResult, jobs: queue.Queue[tuple[int, dict[str, object]] | None],
                 ledger: Ledger, out: Path, interval: float, totals: list[int], lock: threading.Lock) -> None:
        super().__init__(daemon=True)
        self.base, self.jobs, self.ledger, self.out, self.interval = base, jobs, ledger, out, interval
        self.totals, self.lock = totals, lock
        self.api = http.client.HTTPConnection(base.hostname or "127.0.0.1", base.port, timeout=60)
        self.headers = {"Authorization": f"Bearer {os.environ.get('NOVITA_API_KEY', 'naive-key')}",
                        "Content-Type": "application/json"}
        self.media: dict[str, http.client.HTTPConnection] = {}
        self.failed = 0

    def request(self, conn: http.client.HTTPConnection, method: str, path: str,
                body: bytes | None = None, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        conn.request(method, path, body=body, headers=headers or {})
        return conn.getresponse()

    def run(self) -> None:
        while (item := self.jobs.get()) is not None:
            try:
                self.job(*item)
            except Exception as exc:  # the naive script logs and carries on
                print(f"job {item[0]}: {type(exc).__name__}: {exc}", file=sys.stderr)
                self.failed += 1

    def job(self, n: int, body: dict[str, object]) -> None:
        payload = json.dumps(body).encode()
        self.ledger.write("INSERT OR REPLACE INTO jobs (n, body, state, updated) VALUES (?, ?, 'submitting', ?)",
                          n, payload.decode(), time.time())
        response = self.request(self.api, "POST", SUBMIT, payload, self.headers)
        data = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"submit: HTTP {response.status} {data}")
        task_id = data["task_id"]
        self.ledger.write("UPDATE jobs SET state = 'running', task_id = ?, updated = ? WHERE n = ?",
                          task_id, time.time(), n)
        polls = 0
        while True:
            time.sleep(self.interval)
            polls += 1
            response = self.request(self.api, "GET", f"{RESULT}?task_id={urllib.parse.quote(task_id)}",
                                    headers=self.headers)
            result = json.loads(response.read())
            if response.status != 200:
                raise RuntimeError(f"task-result: HTTP {response.status} {result}")
            status = result["task"]["status"]
            if status == "TASK_STATUS_SUCCEED":
                url = urllib.parse.urlsplit(result["videos"][0]["video_url"])
                break
            if status == "TASK_STATUS_FAILED":
                self.ledger.write("UPDATE jobs SET state = 'failed', updated = ? WHERE n = ?", time.time(), n)
                return
        conn = self.media.get(url.netloc)
        if conn is None:
            conn = self.media[url.netloc] = http.client.HTTPConnection(url.hostname or "", url.port, timeout=60)
        response = self.request(conn, "GET", f"{url.path}?{url.query}")
        if response.status != 200:
            raise RuntimeError(f"download: HTTP {response.status}")
        dest = self.out / f"{n}.mp4"
        size = 0
        with dest.open("wb") as handle:
            while chunk := response.read(65536):
                handle.write(chunk)
                size += len(chunk)
        self.ledger.write("UPDATE jobs SET state = 'done', path = ?, updated = ? WHERE n = ?", str(dest), time.time(), n)
        with self.lock:
            self.totals[0] += 1
            self.totals[1] += polls
            self.totals[2] += size


def run(base_url: str, rows: Path, out: Path, concurrency: int, interval: float) -> tuple[list[int], int]:
    out.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(out / "ledger.db")
    jobs: queue.Queue[tuple[int, dict[str, object]] | None] = queue.Queue()
    with rows.open(newline="") as handle:
        for n, row in enumerate(csv.DictReader(handle)):
            jobs.put((n, {"prompt": row["prompt"], "duration": int(row["duration"])}))
    totals, lock = [0, 0, 0], threading.Lock()
    base = urllib.parse.urlsplit(base_url)
    workers = [Worker(base, jobs, ledger, out, interval, totals, lock) for _ in range(concurrency)]
    for worker in workers:
        jobs.put(None)
        worker.start()
    for worker in workers:
        worker.join()
    return totals, sum(w.failed for w in workers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base_url")
    parser.add_argument("rows", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    (jobs, polls, size), failed = run(args.base_url, args.rows, args.out, args.concurrency, args.poll_interval)
    print(jobs, polls, size)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
