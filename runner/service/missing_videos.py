"""The line a run (``run``, ``collect``) ends with when done jobs' videos are not at their recorded paths.

Deleted or moved since they were downloaded (a cleanup cron, an ``rm`` in the wrong folder, a disk replaced): the
ledger reads them done, so the run ended "[complete]", exit 0, and nothing told the operator until the provider's
result URLs had expired. The line says how many, the first paths, whether they can still be downloaded again at no
cost (a recorded URL still valid: until when) and the ``runner verify`` command with this run's ledger.

The run does not download them itself, and its exit code and last word stay as the jobs' states make them: the jobs
are done and paid for once, and the ledger cannot tell a video moved away on purpose (a pipeline that ships finished
videos off the box: ``runner export`` records nothing) from one lost. So the line is a warning while a recorded URL
still serves the video (a deadline to act on), and progress (``info``: not under ``-q``) once none does (``verify``
can still ask the provider for a new URL; ``runner status`` says it too): a pipeline that moves last night's videos
away reads one line per run in its log, never a failed run, no mail from a quiet cron line, and never a download
fighting its ``mv``. Counted by :func:`runner.reporting.missing.missing_videos` (one directory listing per output folder, none
when the last run's check found them all and no folder changed since).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from runner.errors import LedgerError
from runner.ledger import LedgerBackend
from runner.reporting.missing import missing_videos
from runner.reporting.text import local_time
from runner.service.hints import runner_command
from runner.service.outcome import Notice, Notify

__all__ = ["say_missing"]


def say_missing(ledger: LedgerBackend, scope: str | None, say: Notify, *, manifest_path: Path | None,
                state_dir: Path | None, ledger_url: str | None, environ: Mapping[str, str] | None,
                simulated: bool, now: float | None = None) -> int:
    """Say, in one line, how many done jobs of ``scope`` (None: the whole ledger) have no video at their recorded
    path; returns that count (0: nothing said)."""
    try:
        found = missing_videos(ledger, scope, now=time.time() if now is None else now, remember=True)
    except (LedgerError, OSError):  # the ledger's server went away, the state directory unreadable: the run's end
        return 0  # is told as it was; `runner status` and `verify` count them once they can read
    if not found.count:
        return 0
    verify, told = runner_command("verify", manifest_path or "MANIFEST", state_dir=state_dir, ledger=ledger_url,
                                  environ=environ)
    told = f" ({told})" if told else ""
    what = (f"{found.count} done video(s){f' of {scope}' if scope else ''} are not at their recorded path ({found.named}):"
            " deleted or moved since they were downloaded; nothing was paid or downloaded again for them")
    if simulated:
        fix = (f"a simulator's videos cannot be downloaded again (its tasks ended with its run): `{verify} --check-only`"
               f" lists them{told}")
    elif found.restorable:
        fix = (f"`{verify}`{told} downloads them again, paying nothing, while their result URLs last"
               f" ({found.restorable} of them until {local_time(found.until)}, the first to expire); moved on purpose:"
               " nothing to do")
    else:
        fix = (f"their recorded result URLs have expired: `{verify}`{told} asks the provider for new ones (it may no"
               " longer keep the videos); moved on purpose: nothing to do")
    say(Notice(f"{what}; {fix}", "warning" if found.restorable else "info", fields={
        "event": "videos_missing", "count": found.count, "paths": list(found.first), "restorable": found.restorable,
        "restorable_until": found.until}))
    return found.count
