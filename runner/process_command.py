"""The runner command this process runs (``verify``, ``ledger copy``), set by the CLI as a command starts.

The ledger's lock line records it beside the holder's PID (:mod:`runner.ledger.lock`), so that a command refused the
ledger names what holds it — a `runner verify` restoring videos, a `runner review` saving a decision — rather than
calling every holder "another runner" at work on the batch. None where no CLI command runs (the service used as a
library, a test): the line then says nothing of it, as an older runner's did.
"""

from __future__ import annotations

__all__ = ["current", "running"]

_CURRENT: list[str] = []  # the command's words, once set


def running(words: str) -> None:
    """This process runs ``runner WORDS`` (``verify``, ``ledger copy``)."""
    _CURRENT[:] = [words] if words.strip() else []


def current() -> str | None:
    """The command this process runs (``verify``), or None when none was set."""
    return _CURRENT[0] if _CURRENT else None
