"""A ``runner regenerate`` killed between moving a rejected clip aside and queueing its fresh sample: finished by a run.

Killed there (kill -9, a power cut), the job stayed done and rejected with its video in ``_rejected/``: the next run
found nothing to do and ended "complete", the operator's regenerate silently dropped. A run of the manifest finishes
it first (:func:`~runner.ledger.set_aside.finish_stopped`), as ``regenerate`` again would: the job goes back to
pending, its fresh sample paid once by this run (the regenerate had checked the budget, and the run keeps it); the
rejected video stays aside, recorded where it is. ``runner accept`` before the run puts the clip back instead.
The clips still rejected and not generated again (one a regenerate of several was killed before it reached) are
counted in one line, with the command that queues them: a run no longer ends "complete" past them without a word.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from runner.ledger import LedgerBackend
from runner.ledger.set_aside import finish_stopped
from runner.service.hints import runner_command
from runner.service.outcome import Notice, Notify
from runner.storage.local import LocalStore

__all__ = ["finish_stopped_regenerates"]


def finish_stopped_regenerates(ledger: LedgerBackend, manifest: str, say: Notify, *, manifest_path: Path | None = None,
                               state_dir: Path | None = None, ledger_url: str | None = None,
                               environ: Mapping[str, str] | None = None) -> int:
    """Finish the regenerates of ``manifest``'s jobs stopped after their move, each said in one line; how many. The
    clips still rejected and not generated again (a regenerate killed before it moved them, or never asked for) are
    counted in one line, with the command that queues them."""
    done = finish_stopped(ledger, LocalStore(ledger.state_dir), manifest)
    for key, kept in done:
        say(Notice(f"job {key}: the `runner regenerate` stopped after moving its rejected video to {kept} is finished:"
                   " the job is pending again for its fresh sample (one new paid task), the rejected video kept there",
                   "warning"))
    if rejected := ledger.review_counts(manifest).get("rejected", 0):
        regenerate, told = runner_command("regenerate", manifest_path or "MANIFEST", state_dir=state_dir,
                                          ledger=ledger_url, environ=environ)
        say(Notice(f"{rejected} clip(s) of {manifest} rejected and not generated again (left out of exports);"
                   f" `{regenerate}` queues a fresh sample of each (new paid tasks{'; ' + told if told else ''})"))
    return len(done)
