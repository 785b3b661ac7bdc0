"""Jobs named on the command line: a full key or an unambiguous prefix (within one manifest:
`runner reject`, `runner accept`, `runner retry KEY…`), or a task id (`runner show`)."""

from __future__ import annotations

from collections.abc import Sequence

from runner.errors import UsageError
from runner.ledger import LedgerBackend

__all__ = ["resolve_key", "resolve_keys"]

_AMBIGUOUS_SHOWN = 5
_FIRST_LOOK = 50  # keys asked of the ledger at first (ten times more each time after)


def resolve_keys(ledger: LedgerBackend, manifest: str, names: Sequence[str]) -> list[str]:
    """The job keys ``names`` stand for (each a key or a prefix of one), in the order given, each once.

    A name matching no job of ``manifest``, or several, is a :class:`UsageError` listing what it
    matched; nothing is resolved then.
    """
    keys: list[str] = []
    for name in names:
        name = name.strip().lower()
        if not name:
            raise UsageError("an empty job key was given; pass a key or a prefix of one (see `runner ls MANIFEST`)")
        matches, complete = _matches(ledger, manifest, name)
        if not matches:
            raise UsageError(_none_listed(ledger, manifest, name))
        if len(matches) > 1 and name not in matches:
            shown = ", ".join(m[:16] for m in matches[:5]) + (", …" if len(matches) > 5 else "")
            count = f"{len(matches)}" if complete else f"at least {len(matches)}"
            raise UsageError(f"{name!r} matches {count} jobs of {manifest} ({shown}); give more of the key")
        key = name if name in matches else matches[0]
        if key not in keys:
            keys.append(key)
    return keys


def _none_listed(ledger: LedgerBackend, manifest: str, prefix: str) -> str:
    """Why ``prefix`` names no job of ``manifest``: one of its jobs an edit dropped (still in the ledger, in no
    export), or none at all."""
    dropped = [key for key in ledger.find_keys(prefix, limit=_FIRST_LOOK) if ledger.orphan_home(key) == manifest]
    if len(dropped) == 1:
        return (f"{dropped[0]} is a job {manifest} no longer lists (an edit dropped it: `runner status` counts it"
                " among the orphans, no export has it; `runner show KEY` shows it). Nothing changed")
    return f"no job of {manifest} has a key starting with {prefix!r}; see `runner ls` for the keys"


def _matches(ledger: LedgerBackend, manifest: str, prefix: str) -> tuple[list[str], bool]:
    """``manifest``'s keys starting with ``prefix`` (sorted), and whether that is all of them. The ledger is asked for
    more keys until it has no more or two of the manifest's are found: its first keys with the prefix may all be
    another manifest's (a shared ledger), and a second job of this one past them makes the prefix ambiguous."""
    limit = _FIRST_LOOK
    while True:
        found = ledger.find_keys(prefix, limit=limit)
        matches = [k for k in found if ledger.target_output(manifest, k) is not None]
        if len(found) < limit or prefix in matches:
            return matches, True
        if len(matches) > 1:
            return matches, False
        limit *= 10


def resolve_key(ledger: LedgerBackend, ident: str) -> str:
    """A job key from a key, a unique key prefix, or a task_id; :class:`UsageError` otherwise."""
    ident = ident.strip()
    if not ident:
        raise UsageError("give a job key (or a unique prefix of one) or a task_id")
    if ledger.get(ident) is not None:
        return ident
    keys = ledger.find_keys(ident, limit=_AMBIGUOUS_SHOWN + 1)
    if len(keys) == 1:
        return keys[0]
    if len(keys) > 1:
        shown = ", ".join(keys[:_AMBIGUOUS_SHOWN]) + (", …" if len(keys) > _AMBIGUOUS_SHOWN else "")
        raise UsageError(f"{ident!r} is the prefix of several job keys ({shown}); give more characters")
    key = ledger.key_of_task(ident)
    if key is not None:
        return key
    raise UsageError(f"no job has the key, key prefix or task_id {ident!r} in {ledger.location}"
                     " (see `runner ls MANIFEST`)")
