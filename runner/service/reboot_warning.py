"""The warning, before anything is sent, that a reboot empties the state directory or its videos' folder.

A ledger on a tmpfs (``--state /dev/shm/batch``) or in a folder emptied at boot (``/tmp`` on Debian and Ubuntu) is
gone after a reboot: the next run finds no ledger and pays for every video again, and the videos are lost. ``run``
(``submit``, ``collect``, and ``retry --lost`` through it), ``plan`` and ``ledger copy`` (of its destination) say so
once, as a warning: a scratch batch there is the operator's right, and ``RUNNER_SCRATCH_STATE=1`` says "I know" (the
test suite sets it: pytest's folders are under ``/tmp``). Which folders count is :mod:`runner.storage.reboot`'s, and
before it :mod:`runner.storage.container`'s: a state directory that goes with its container (its own file system, an
anonymous volume, an emptyDir) is lost the same way, at the container's end.
"""

from __future__ import annotations

import os
from pathlib import Path

from runner.layout import OUTPUTS_DIR
from runner.service.outcome import Notice, Notify
from runner.storage.container import removed_with_container
from runner.storage.reboot import Emptied, emptied_at_boot_all, read_mounts

__all__ = ["SCRATCH_ENV", "emptied_warnings", "warn_emptied_at_boot"]

#: Set (to anything but ``0``) by an operator who keeps a state directory where a reboot empties it on purpose.
SCRATCH_ENV = "RUNNER_SCRATCH_STATE"
_FIX = "Pass --state with a folder on a disk you keep"
_KNOW = f" (or set {SCRATCH_ENV}=1 if this batch may be lost and you know it)"


def warn_emptied_at_boot(state_dir: Path, say: Notify, *, ledger_in_database: bool, fix: str = _FIX) -> None:
    """Say :func:`emptied_warnings` of ``state_dir`` through ``say`` (nothing with :data:`SCRATCH_ENV` set in the
    process's environment, as ``RUNNER_LEDGER_URL`` is read); ``fix``: what to do instead (``ledger copy``: copy
    elsewhere)."""
    said = os.environ.get(SCRATCH_ENV, "").strip()
    if said and said != "0":
        return
    for notice in emptied_warnings(state_dir, ledger_in_database=ledger_in_database, fix=fix):
        say(notice)


def emptied_warnings(state_dir: Path, *, ledger_in_database: bool, fix: str = _FIX) -> list[Notice]:
    """One warning for the state directory (its ledger, and its videos when they are on the same storage), and one
    for its videos' folder (``outputs/``) when only that, or that on other storage, is lost: with its container
    (first: at the run's end under ``--rm``), or by a reboot."""
    folders = [state_dir / OUTPUTS_DIR] if ledger_in_database else [state_dir, state_dir / OUTPUTS_DIR]
    mounts = read_mounts()  # once for both folders and both questions
    lost = [removed_with_container(folder, mounts) or emptied
            for folder, emptied in zip(folders, emptied_at_boot_all(folders, mounts), strict=True)]
    state, videos = (None, *lost) if ledger_in_database else lost
    same = state is not None and videos is not None and (state.how, state.where) == (videos.how, videos.where)
    notices = []
    if state is not None:
        cost = ("the ledger with it (the next run would pay for every video again) and the videos stored there"
                " (lost)" if same else "the ledger with it: the next run would pay for every video again")
        notices.append(_notice(state, f"the state directory {state_dir.absolute()}", cost, ["ledger", "videos"]
                               if same else ["ledger"], fix))
    if videos is not None and not same:
        notices.append(_notice(videos, f"the videos' folder {state_dir.absolute() / OUTPUTS_DIR}",
                               "every video stored there with it: paid for, and lost", ["videos"], fix))
    return notices


def _notice(emptied: Emptied, what: str, cost: str, holds: list[str], fix: str) -> Notice:
    return Notice(f"warning: {what} {emptied.why()}: {emptied.by} would take {cost}. {emptied.way_on(fix)}{_KNOW}",
                  "warning",
                  fields={"event": "emptied_at_boot", "folder": str(emptied.folder), "holds": holds,
                          "how": emptied.how, "where": emptied.where, "rule": emptied.rule or None})
