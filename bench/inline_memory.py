"""Memory of image-to-video submits whose images go inline: N bodies of S bytes built and sent at once.

    .venv/bin/python -m bench.inline_memory                                   # N=24 images of 10 MB
    .venv/bin/python -m bench.inline_memory --jobs 48 --concurrency 24 --cap-mib 64
    .venv/bin/python -m bench.inline_memory --against /tmp/before             # the code before, same minutes

A local image is sent inline: its bytes, base64-encoded into a ``data:`` URI, inside the JSON body of the
submit POST. What that costs in memory while the POSTs are on the wire, two ways, against a simulator
subprocess on a loopback port (``python -m runner.simulator``, the server ``SimulatorThread`` runs; in its own
process so that what it receives is not counted) that holds every submit's answer ``--hold`` seconds (its
``p_slow`` knob), so all the bodies are in flight together:

* ``client``: one child process per way of building a body; it builds ``--jobs`` bodies at once, each from its
  own PNG of ``--image-bytes``, and POSTs them through the real :class:`~runner.client.NovitaClient` (httpx over
  the runner's own transport). ``eager``: the resolver reads the file and the wire body holds the data URI as a
  string, sent with httpx's ``json=`` (the only way before this bench's change). ``encoded``: the resolver defers
  the file (an ``Inline``), and the body's bytes are encoded with the base64 written straight into them
  (``runner.client.body``). Figures: tracemalloc's peak over the phase and the growth of the peak RSS, each
  also per body; every body is checked byte for byte against the one httpx's ``json=`` makes of the eager body.
* ``run``: ``runner run`` of a manifest of the same images at ``--concurrency`` (tasks of 1 s), its peak RSS
  (``os.wait4``): with the default cap of inline bytes (256 MiB), and with ``RUNNER_INLINE_MEMORY`` at
  ``--cap-mib``.

``--against DIR`` runs ``eager`` and ``run`` once more with another checkout (``PYTHONPATH=DIR``): the code
before. Prints figures; a benchmark, never an assertion.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MODEL = "kling-v3.0-std-i2v"
MIB = 1024 * 1024


# ----------------------------------------------------------------------------- images


def big_png(size: int, seed: int) -> bytes:
    """A valid 1280x720 PNG of exactly ``size`` bytes: a small picture plus a private chunk of random bytes."""
    width, height = 1280, 720
    row = b"\x00" + bytes((seed + x) % 256 for x in range(width))
    idat = zlib.compress(row * height, 1)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    fixed = len(head) + len(chunk(b"IDAT", idat)) + len(chunk(b"IEND", b"")) + 12
    pad = os.urandom(max(0, size - fixed))
    return head + chunk(b"IDAT", idat) + chunk(b"rnDm", pad) + chunk(b"IEND", b"")


def write_images(folder: Path, count: int, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"f{i:03d}.png").write_bytes(big_png(size, i))


# ----------------------------------------------------------------------------- the client child


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def client_child(args: argparse.Namespace) -> None:
    """One way of building the bodies (``args.mode``), in this process alone; prints one JSON line."""
    import gc
    import hashlib
    import resource
    import tracemalloc

    import anyio

    from runner import endpoints
    from runner.client import NovitaClient, make_http_client
    from runner.manifest.inputs import InputResolver

    folder = Path(args.folder)
    files = sorted(folder.glob("*.png"))[: args.jobs]
    spec = endpoints.get(MODEL)
    requests = []
    for i, path in enumerate(files):
        data = path.read_bytes()
        ref = {"file": f"frames/{path.name}", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
               "kind": "image", "mime": "image/png"}
        requests.append(spec.request_body({"prompt": f"push in, take {i}", "image": ref, "duration": 5}))
        del data
    eager = InputResolver(folder.parent)
    if args.mode == "encoded":
        from runner.client.body import inline_body

        deferred = InputResolver(folder.parent, deferred=True)  # type: ignore[call-arg]

    def build(request: dict[str, Any]) -> Any:
        if args.mode == "eager":
            return spec.wire_body(request, eager)
        body = inline_body(spec.wire_body(request, deferred))
        return body.encode() if not isinstance(body, dict) else body

    async def main() -> dict[str, Any]:
        async with make_http_client(read=300) as http:
            client = NovitaClient(http, base_url=args.base_url, api_key="bench-key-0123456789")
            warm = await client.submit("kling-v3.0-std-t2v", {"prompt": "warm up", "duration": 5})
            assert warm.outcome.value == "accepted", warm
            if args.check:  # every encoded body is the bytes httpx's json= makes of the eager body
                for request in requests:
                    body = build(request)
                    if isinstance(body, bytes):
                        want = http.build_request("POST", args.base_url, json=spec.wire_body(request, eager)).content
                        assert body == want, "the encoded body differs from json="
                    del body
            gc.collect()
            rss0 = _rss()
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            outcomes: list[str] = []

            async def one(request: dict[str, Any]) -> None:
                body = build(request)
                result = await client.submit(MODEL, body)
                outcomes.append(result.outcome.value)

            async with anyio.create_task_group() as group:
                for request in requests:
                    group.start_soon(one, request)
            peak = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
            maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            return {"mode": args.mode, "bodies": len(requests), "traced_peak": peak,
                    "rss_growth": max(0, maxrss - rss0), "accepted": outcomes.count("accepted")}

    print(json.dumps(anyio.run(main)))


# ----------------------------------------------------------------------------- the parent


def _client(mode: str, tree: Path, folder: Path, base_url: str, jobs: int, check: bool) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNNER_", "NOVITA_"))}
    env["PYTHONPATH"] = str(tree)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--folder", str(folder),
           "--base-url", base_url, "--jobs", str(jobs)] + (["--check"] if check else [])
    out = subprocess.run(cmd, env=env, cwd=folder.parent, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} child failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


MANIFEST = """name: inline-bench
model: {model}
prompt: "The camera slowly pushes in"
defaults:
  duration: 5
matrix:
  image: {{glob: "frames/*.png"}}
output: "{{image}}.mp4"
limits:
  concurrency: {concurrency}
  rpm: none
"""


def _run(tree: Path, work: Path, name: str, concurrency: int, hold: float, cap: int | None) -> dict[str, Any]:
    from bench.procs import SimProcess, measure, runner_env

    (work / "inline.yaml").write_text(MANIFEST.format(model=MODEL, concurrency=concurrency))
    extra = {"PYTHONPATH": str(tree)}
    if cap is not None:
        extra["RUNNER_INLINE_MEMORY"] = str(cap)
    with SimProcess({"task_seconds": 1.0, "p_slow": 1.0, "slow_seconds": hold, "seed": 1}) as sim:
        state = work / f"state-{name}"
        cmd = [sys.executable, "-m", "runner", "run", str(work / "inline.yaml"), "--state", str(state),
               "--base-url", sim.base_url, "--poll-interval", "0.5"]
        m = measure(cmd, env=runner_env(**extra), cwd=work, log=work / f"{name}.log")
        accepted = sim.stats()["accepted_total"]
    return {"run": name, "exit": m.code, "wall_s": round(m.wall_s, 1), "peak_rss_mib": round(m.max_rss_mib, 1),
            "accepted": accepted}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=24, help="bodies (images), N")
    parser.add_argument("--image-bytes", type=int, default=10_000_000, help="size of each image, S (≤ 10 MiB)")
    parser.add_argument("--concurrency", type=int, default=24, help="concurrency of the `runner run` part")
    parser.add_argument("--cap-mib", type=float, default=64, help="RUNNER_INLINE_MEMORY of the capped run, MiB")
    parser.add_argument("--hold", type=float, default=1.0, help="seconds the simulator holds each submit's answer")
    parser.add_argument("--against", type=Path, default=None, help="another checkout: the code before")
    parser.add_argument("--parts", default="client,run")
    parser.add_argument("--workdir", type=Path, default=None)
    # the child's own arguments
    parser.add_argument("--child", choices=["eager", "encoded"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default="", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        args.mode = args.child
        client_child(args)
        return 0

    from bench.procs import SimProcess, machine

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-inline-"))
    folder = work / "frames"
    write_images(folder, args.jobs, args.image_bytes)
    print(f"machine: {machine()}")
    print(f"{args.jobs} images of {args.image_bytes:,} bytes in {folder}; the simulator holds each answer {args.hold:g} s")
    trees = [("this tree", REPO)] + ([("against", args.against.resolve())] if args.against is not None else [])
    parts = set(args.parts.split(","))
    if "client" in parts:
        print(f"\nclient: {args.jobs} bodies built and POSTed at once (the real client, loopback)")
        print(f"  {'code':<10} {'mode':<8} {'traced peak':>12} {'per body':>10} {'RSS growth':>11} {'per body':>10}  accepted")
        with SimProcess({"task_seconds": 1.0, "p_slow": 1.0, "slow_seconds": args.hold, "seed": 1}) as sim:
            for label, tree in trees:
                modes = ["eager", "encoded"] if (tree / "runner" / "client" / "body.py").exists() else ["eager"]
                for mode in modes:
                    r = _client(mode, tree, folder, sim.base_url, args.jobs, check=mode == "encoded")
                    n = max(1, r["bodies"])
                    print(f"  {label:<10} {mode:<8} {r['traced_peak'] / MIB:>9.1f} MiB {r['traced_peak'] / n / MIB:>6.1f} MiB"
                          f" {r['rss_growth'] / MIB:>8.1f} MiB {r['rss_growth'] / n / MIB:>6.1f} MiB  {r['accepted']}/{n}")
    if "run" in parts:
        print(f"\nrun: `runner run` of the {args.jobs} images at concurrency {args.concurrency} (peak RSS of the process)")
        cap = int(args.cap_mib * MIB)
        for label, tree in trees:
            capped = (tree / "runner" / "engine" / "room.py").exists()  # the code with the cap
            runs = [(label, None)] + ([(f"{label}, cap {args.cap_mib:g} MiB", cap)] if capped else [])
            for name, limit in runs:
                r = _run(tree, work, name.replace(" ", "_").replace(",", ""), args.concurrency, args.hold, limit)
                print(f"  {name:<24} peak RSS {r['peak_rss_mib']:>7.1f} MiB  wall {r['wall_s']:>5.1f} s"
                      f"  exit {r['exit']}  accepted {r['accepted']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
