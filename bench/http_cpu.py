"""CPU per HTTP request of the runner's client stack, against httpx's own pool in the same run.

    .venv/bin/python -m bench.http_cpu [--requests 3000] [--concurrency 1,50]

A keep-alive server in a subprocess answers every request with a task-result-sized JSON body (it
parses just enough HTTP/1.1 to frame requests: this measures the client, not a server). In this
process, each side sends the same GETs through ``httpx.AsyncClient`` at each concurrency, after a
warm-up round, and the figure is this process's CPU time (user + sys) over the requests:

    lean    the runner's transport (``runner.client.transport.LeanTransport``)
    httpx   httpx's default transport (httpcore's pool), the baseline

Prints µs of CPU per request and lean / httpx. A benchmark, never a timed assertion.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time

import anyio
import httpx

from bench.procs import machine
from runner.client.transport import LeanTransport

_SERVER = r'''
import asyncio, sys
BODY = b'{"task":{"task_id":"abc","status":"TASK_STATUS_SUCCEED","eta":0,"progress_percent":100},' \
       b'"videos":[{"video_url":"http://127.0.0.1/x.mp4","video_url_ttl":"3600","video_type":"mp4"}]}'
RESP = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)
class P(asyncio.Protocol):
    def connection_made(self, t): self.t, self.buf = t, b""
    def data_received(self, d):
        self.buf += d
        while (i := self.buf.find(b"\r\n\r\n")) >= 0:  # GETs only: no request body
            self.buf = self.buf[i + 4:]
            self.t.write(RESP)
async def main():
    server = await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _round(client: httpx.AsyncClient, url: str, requests: int, concurrency: int) -> None:
    async def worker(n: int) -> None:
        for _ in range(n):
            response = await client.get(url)
            response.json()

    async with anyio.create_task_group() as tg:
        for i in range(concurrency):
            tg.start_soon(worker, requests // concurrency + (1 if i < requests % concurrency else 0))


async def _measure(side: str, url: str, requests: int, concurrency: int) -> float:
    transport: httpx.AsyncBaseTransport = (
        LeanTransport(max_connections=concurrency) if side == "lean"
        else httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=concurrency)))
    async with httpx.AsyncClient(transport=transport, headers={"Authorization": "Bearer bench"}) as client:
        await _round(client, url, min(requests, 500), concurrency)  # connections open, code warm
        started = time.process_time()
        await _round(client, url, requests, concurrency)
        return 1e6 * (time.process_time() - started) / requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", default="1,50")
    parser.add_argument("--repeat", type=int, default=2, help="rounds per side, alternating; the minimum is kept")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        url = f"http://127.0.0.1:{port}/v3/async/task-result?task_id=abc"
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            best: dict[str, float] = {}
            for _ in range(args.repeat):
                for side in ("lean", "httpx"):
                    figure = anyio.run(_measure, side, url, args.requests, concurrency)
                    best[side] = min(best.get(side, figure), figure)
            print(json.dumps({"concurrency": concurrency, "requests": args.requests,
                              "lean_us_cpu_per_request": round(best["lean"], 1),
                              "httpx_pool_us_cpu_per_request": round(best["httpx"], 1),
                              "lean_over_httpx": round(best["lean"] / best["httpx"], 3)}))
    finally:
        server.terminate()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
