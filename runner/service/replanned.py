"""Whether the plan a run works from is still its manifest's: its files unchanged, and no other run re-planned it.

A run submits the jobs its manifest's last registration targets. Two things change that plan under it:
its own files, saved again (:class:`~runner.manifest.sourcefiles.EditWatch`); and, on a ledger shared by
several hosts, another runner registering another version of the manifest under the same name (a host
deployed an older or a newer file). Then the targets are that version's: this run would submit none of
its own version's jobs that the other drops, and end "complete" with them unsent. Either way the submit
lane stops submitting (``StopReason.EDITED``, exit 3), collects what it paid for, and says which.
"""

from __future__ import annotations

from collections.abc import Callable

from runner.errors import LedgerError
from runner.ledger import LedgerBackend

__all__ = ["PlanWatch"]


class PlanWatch:
    """What changed the plan since this run registered it, or None (called once a second by the submit lane)."""

    def __init__(self, files: Callable[[], str | None], ledger: LedgerBackend, name: str, digest: str) -> None:
        self._files = files
        self._ledger = ledger
        self._name = name
        self._digest = digest

    def __call__(self) -> str | None:
        changed = self._files()
        if changed is not None:
            return changed
        try:
            now = self._ledger.manifest_digest(self._name)  # one indexed read of one row
        except LedgerError:  # a read that failed (a connection lost mid-statement): looked at again in a second
            return None
        if now is None or now == self._digest:
            return None
        return (f"the plan of manifest {self._name!r} (another runner on this ledger planned another version of its"
                " file; the runners of one batch must run the same file)")
