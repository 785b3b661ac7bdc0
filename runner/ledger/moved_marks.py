"""The marks in a ledger's meta that say its jobs go on elsewhere: moved (``runner ledger copy`` copied it, or a run
from a ``cp -a`` copy of its folder went on) or an unfinished copy. Runs refuse a ledger bearing either."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.ledger.path_text import as_text, from_text

if TYPE_CHECKING:
    from runner.ledger.api import LedgerBackend

__all__ = ["BY_RUN", "COPYING_META", "MOVED_META", "copying_from", "moved_mark", "moved_to", "read_moved"]

# meta key: where `runner ledger copy` copied this ledger (:func:`moved_mark`), or a run from a ``cp -a`` copy of its
# folder went on (:mod:`runner.ledger.sqlite.copied`); runs refuse it until `runner ledger reopen` clears it
MOVED_META = "moved_to"
BY_RUN = "+run"  # how a MOVED_META time ends when a run from a ``cp -a`` copy marked it, not `runner ledger copy`


def moved_mark(where: str, when: str, *, by_run: bool = False) -> str:
    """The :data:`MOVED_META` value: copied to ``where`` at ``when`` (no space in it); ``by_run``: a run went on from a
    copy of its folder made by other tools (:data:`BY_RUN`)."""
    return f"{as_text(where)} {when}{BY_RUN if by_run else ''}"  # (a folder name's byte not UTF-8: escaped)


# meta key: the ledger is a copy `runner ledger copy` has not finished (its value: the source), written in its own
# commit before the copy's rows, removed in theirs. A run refuses it: a copy killed mid-way would pay for all again.
COPYING_META = "copy_from"


def copying_from(ledger: LedgerBackend) -> str | None:
    """The source of the unfinished copy ``ledger`` is (:data:`COPYING_META`), or None."""
    return ledger.meta(COPYING_META) or None


def moved_to(ledger: LedgerBackend) -> tuple[str, str, bool] | None:
    """Where and when ``ledger`` was copied, and whether by a run from a ``cp -a`` copy (:func:`read_moved`), or None."""
    return read_moved(ledger.meta(MOVED_META))


def read_moved(mark: str | None) -> tuple[str, str, bool] | None:
    """A :func:`moved_mark` read: (where, when, whether a run marked it: :data:`BY_RUN`), None for none."""
    if not mark:
        return None
    where, _, when = mark.rpartition(" ")
    return from_text(where), when.removesuffix(BY_RUN), when.endswith(BY_RUN)
