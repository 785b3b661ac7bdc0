"""The `runner` executable: signal handlers first, then the (heavier) CLI.

A SIGINT/SIGTERM that arrives while Python is still importing must end the
process like any other early stop (exit 3, nothing sent), not with the
default action; so the handlers go in before anything else is imported.
"""

from __future__ import annotations

import signal
import sys

EXIT_STOPPED = 3


class _EarlyStop(BaseException):
    pass


def _stop(signum: int, frame: object) -> None:
    raise _EarlyStop(signal.Signals(signum).name)


def main() -> None:
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        from runner.cli import main as cli
    except _EarlyStop as stop:
        print(f"runner: {stop}: stopped before anything was sent", file=sys.stderr)
        sys.exit(EXIT_STOPPED)
    cli()
