"""Placing a stored video at another path without paying or downloading again."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Literal

from runner.errors import RunnerError

__all__ = ["link_or_copy"]


def link_or_copy(source: Path, dest: Path) -> Literal["linked", "copied"]:
    """Hard-link ``source`` at ``dest`` (a copy across devices), atomically; returns which.

    An existing ``dest`` that already is ``source`` is left alone. An OS error
    becomes a :class:`RunnerError` naming both paths.
    """
    try:
        if dest.exists() and os.path.samefile(source, dest):
            return "linked"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.link-{os.getpid()}")
        how: Literal["linked", "copied"] = "linked"
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
            how = "copied"
        os.replace(tmp, dest)
        return how
    except OSError as exc:
        raise RunnerError(
            f"cannot place {dest} from {source}: {exc.strerror or exc}; the ledger still records the video;"
            " restore the file or free space and run again"
        ) from exc
