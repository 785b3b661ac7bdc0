"""``python -m runner.simulator``: serve the simulator until SIGTERM / SIGINT.

Prints ``simulator listening on http://HOST:PORT`` on stderr once it accepts
connections (``--port 0`` picks a free port), which is what subprocess tests
wait for.

    python -m runner.simulator --port 0 --task-seconds 0.5 --config '{"p_drop": 0.1, "seed": 7}'
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

import anyio

from runner.errors import UsageError
from runner.simulator.app import Simulator
from runner.simulator.config import parse_changes, parse_config
from runner.simulator.server import serve_until_signalled


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runner.simulator",
        description="Serve the built-in Novita simulator over HTTP until SIGTERM or SIGINT.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--task-seconds", type=float, default=None, help="time from submit to a finished task")
    parser.add_argument(
        "--config",
        default=None,
        metavar="JSON",
        help='a JSON object of SimConfig knobs, e.g. \'{"p_drop": 0.1, "seed": 7}\'',
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        changes = parse_changes(args.config) if args.config else {}
        if args.task_seconds is not None:
            changes["task_seconds"] = args.task_seconds
        config = parse_config(None, **changes)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sim = Simulator(config)
    anyio.run(partial(serve_until_signalled, sim, host=args.host, port=args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
